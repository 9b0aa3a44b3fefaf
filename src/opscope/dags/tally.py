"""What the service counts of a deployment's runs, carried from one collection to the next:
finished runs by state, failed and retried task tries, and each DAG's last finished run.

Each collection reads only the runs since the previous one (less `OVERLAP_S`, for runs
written late or clocks apart) and those still unfinished then. A finished run is counted
once, keyed by its run id and its end (a run cleared and run again ends again, and counts
again); the keys of runs that can no longer be read again are dropped, so the tally stays
as small as the window it reads. `to_doc`/`from_doc` keep it in the store, so a restarted
service goes on counting where the previous process stopped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opscope.dags.model import FINISHED_RUN_STATES, Run

#: the store's kind of the tally's document
SNAPSHOT_KIND = "dags.runs/1"
#: seconds read again before the previous collection: runs committed late, clocks apart
OVERLAP_S = 600.0
#: states of unfinished runs that are counted as active
ACTIVE_RUN_STATES = ("queued", "running")
#: states of the task instances of active runs that are counted as active
ACTIVE_TASK_STATES = ("scheduled", "queued", "running")


@dataclass
class LastRun:
    state: str
    end: float
    duration: float | None


@dataclass
class DagTally:
    runs: dict[str, int] = field(default_factory=dict)
    task_failures: int = 0
    task_retries: int = 0
    last: LastRun | None = None
    last_success_end: float | None = None


@dataclass
class Active:
    """What is going on now: unfinished runs and their task instances, by DAG and state."""

    runs: dict[tuple[str, str], int] = field(default_factory=dict)
    tasks: dict[tuple[str, str], int] = field(default_factory=dict)
    #: runs the read returned
    read: int = 0


def _placed(run: Run) -> float | None:
    """The time the readers select a run by (its start, else when it was queued)."""
    return run.start if run.start is not None else run.queued_at


def retries_of(run: Run) -> int:
    """Tries beyond the first of each task instance."""
    instances = {(t.task_id, t.map_index) for t in run.tries}
    return len(run.tries) - len(instances)


@dataclass
class RunTally:
    dags: dict[str, DagTally] = field(default_factory=dict)
    #: finished runs counted: "dag_id\x1frun_id\x1fend" -> the time the readers place it at
    counted: dict[str, float] = field(default_factory=dict)
    #: unfinished runs at the last read -> the time the readers place them at
    pending: dict[str, float] = field(default_factory=dict)
    #: the clock of the last read (Unix seconds)
    read_at: float | None = None

    def since(self) -> datetime | None:
        """Where the next read starts: None (everything the history settings allow) the
        first time, else the last read or the oldest run unfinished then, less OVERLAP_S."""
        if self.read_at is None:
            return None
        start = min([self.read_at, *self.pending.values()]) - OVERLAP_S
        return datetime.fromtimestamp(start, UTC)

    def add(self, runs: Iterable[Run], now: float, dag_ids: Iterable[str] = ()) -> Active:
        """Fold one read in; `now` becomes `read_at`. Returns what is active now."""
        for dag_id in dag_ids:
            self.dags.setdefault(dag_id, DagTally())
        active = Active()
        pending: dict[str, float] = {}
        for run in runs:
            active.read += 1
            dag = self.dags.setdefault(run.dag_id, DagTally())
            placed = _placed(run)
            if run.state not in FINISHED_RUN_STATES or run.end is None:
                state = run.state or "queued"
                if state in ACTIVE_RUN_STATES:
                    rkey = (run.dag_id, state)
                    active.runs[rkey] = active.runs.get(rkey, 0) + 1
                    for t in run.tries:
                        if t.state in ACTIVE_TASK_STATES:
                            tkey = (run.dag_id, t.state)
                            active.tasks[tkey] = active.tasks.get(tkey, 0) + 1
                if placed is not None:
                    pending[f"{run.dag_id}\x1f{run.run_id}"] = placed
                continue
            key = f"{run.dag_id}\x1f{run.run_id}\x1f{run.end!r}"
            if key in self.counted:
                continue
            self.counted[key] = placed if placed is not None else run.end
            assert run.state is not None
            dag.runs[run.state] = dag.runs.get(run.state, 0) + 1
            dag.task_failures += sum(1 for t in run.tries if t.state == "failed")
            dag.task_retries += retries_of(run)
            if dag.last is None or run.end >= dag.last.end:
                dag.last = LastRun(run.state, run.end, run.duration)
            if run.state == "success" and (
                dag.last_success_end is None or run.end > dag.last_success_end
            ):
                dag.last_success_end = run.end
        self.pending = pending
        self.read_at = now
        # a run placed before where the next read starts is never read again (the start
        # only moves on: the pending runs were all placed after this read's start)
        following = self.since()
        if following is not None:
            cut = following.timestamp()
            self.counted = {k: v for k, v in self.counted.items() if v >= cut}
        return active

    # --- the store's document --------------------------------------------------------------

    def to_doc(self) -> dict[str, Any]:
        return {
            "read_at": self.read_at,
            "counted": self.counted,
            "pending": self.pending,
            "dags": {
                dag_id: {
                    "runs": d.runs,
                    "task_failures": d.task_failures,
                    "task_retries": d.task_retries,
                    "last": None
                    if d.last is None
                    else {"state": d.last.state, "end": d.last.end, "duration": d.last.duration},
                    "last_success_end": d.last_success_end,
                }
                for dag_id, d in sorted(self.dags.items())
            },
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> RunTally:
        dags: dict[str, DagTally] = {}
        for dag_id, d in (doc.get("dags") or {}).items():
            last = d.get("last")
            dags[dag_id] = DagTally(
                runs={str(k): int(v) for k, v in (d.get("runs") or {}).items()},
                task_failures=int(d.get("task_failures") or 0),
                task_retries=int(d.get("task_retries") or 0),
                last=None
                if not last
                else LastRun(
                    str(last["state"]),
                    float(last["end"]),
                    None if last.get("duration") is None else float(last["duration"]),
                ),
                last_success_end=d.get("last_success_end"),
            )
        read_at = doc.get("read_at")
        return cls(
            dags=dags,
            counted={str(k): float(v) for k, v in (doc.get("counted") or {}).items()},
            pending={str(k): float(v) for k, v in (doc.get("pending") or {}).items()},
            read_at=None if read_at is None else float(read_at),
        )

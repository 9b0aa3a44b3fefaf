"""The figures the one pass over the runs gathers: per DAG, per task and per pool. Apart from
the pass itself (aggregate.py), so that its fast path (batch.py) fills them without an
import cycle."""

from __future__ import annotations

import heapq
from array import array
from collections import Counter
from dataclasses import dataclass, field

from opscope.dags.graph import Plan
from opscope.dags.model import FINISHED_RUN_STATES, Dag, Graph, Run
from opscope.dags.runs import RunFacts, facts_of
from opscope.dags.stats import Sample, sort_samples


@dataclass
class TaskStats:
    task_id: str
    span: Sample = field(default_factory=Sample)
    #: span / the run's wall time
    share: Sample = field(default_factory=Sample)
    slack: Sample = field(default_factory=Sample)
    to_queue: Sample = field(default_factory=Sample)
    in_queue: Sample = field(default_factory=Sample)
    wait: Sample = field(default_factory=Sample)
    runs: int = 0
    critical_runs: int = 0
    retried_runs: int = 0
    retries: int = 0
    retry_cost: float = 0.0
    #: runs whose failure this task caused (it failed, rather than an upstream one)
    failures: int = 0
    pool: str | None = None
    instances: int = 0
    #: the index among the DAG's successful runs of each value of `span`: what tells which
    #: task moved when the DAG's duration did
    success_index: array[int] = field(default_factory=lambda: array("q"))


@dataclass
class DagStats:
    dag_id: str
    dag: Dag | None = None
    runs: int = 0
    states: Counter[str] = field(default_factory=Counter)
    #: successful runs in the order read (by start): when, duration, DAG version
    success_when: array[float] = field(default_factory=lambda: array("d"))
    success_duration: array[float] = field(default_factory=lambda: array("d"))
    success_version: list[str | None] = field(default_factory=list)
    tasks: dict[str, TaskStats] = field(default_factory=dict)
    paths: Counter[tuple[str, ...]] = field(default_factory=Counter)
    critical_length: Sample = field(default_factory=Sample)
    wall: Sample = field(default_factory=Sample)
    work: Sample = field(default_factory=Sample)
    critical_wait: Sample = field(default_factory=Sample)
    failing_tasks: Counter[str] = field(default_factory=Counter)
    first_when: float | None = None
    last_when: float | None = None
    last_failure: float | None = None
    #: the latest finished runs, whole, as a heap by (when, order read)
    recent: list[tuple[float, int, RunFacts]] = field(default_factory=list)
    #: latest runs the fast path keeps whole, by (when, order read), not yet made RunFacts
    #: (`settle`, `latest`): with `recent`, the `recent_runs` latest
    unsettled: dict[tuple[float, int], tuple[Run, Graph, Plan]] = field(default_factory=dict)
    slowest: RunFacts | None = None
    #: runs whose graph had a cycle (analysed without their dependencies)
    cyclic_runs: int = 0

    def count_run(self, run: Run) -> None:
        """A run's own figures: its state, and the span of runs read. Both paths (one run at
        a time, and the fast path's batches) count each run here first."""
        self.runs += 1
        self.states[run.state or "unknown"] += 1
        when = run.when
        if when is not None:
            self.first_when = when if self.first_when is None else min(self.first_when, when)
            self.last_when = when if self.last_when is None else max(self.last_when, when)

    def sort(self) -> None:
        """Sort the DAG's and its tasks' long series ahead of their quantiles (each keeps
        its sorted values until more are added)."""
        samples = [self.critical_length, self.wall, self.work, self.critical_wait]
        for ts in self.tasks.values():
            samples += (ts.span, ts.share, ts.slack, ts.to_queue, ts.in_queue, ts.wait)
        sort_samples(samples)

    def task(self, task_id: str) -> TaskStats:
        stats = self.tasks.get(task_id)
        if stats is None:
            stats = self.tasks[task_id] = TaskStats(task_id)
        return stats

    @property
    def finished(self) -> int:
        return sum(self.states[s] for s in FINISHED_RUN_STATES)

    @property
    def recent_runs(self) -> list[RunFacts]:
        """The latest finished runs, oldest first."""
        self.settle()
        return [f for _, _, f in sorted(self.recent)]

    @property
    def recent_success(self) -> list[RunFacts]:
        return [f for f in self.recent_runs if f.run.state == "success"]

    def latest(self, count: int, *, success: bool = False) -> list[RunFacts]:
        """`recent_runs[-count:]` (`recent_success[-count:]` with `success`), making RunFacts
        of only these of the runs the fast path kept: the checks replay five of the twenty
        kept, and a RunFacts costs a third of a millisecond a run of a hundred tasks."""
        made = {(w, s): f for w, s, f in self.recent}
        keys = sorted([*made, *self.unsettled])
        if success:
            keys = [
                k
                for k in keys
                if (made[k].run if k in made else self.unsettled[k][0]).state == "success"
            ]
        chosen = keys[-count:] if count > 0 else []
        for key in chosen:
            if key not in made:
                made[key] = self._settle(key)
        return [made[k] for k in chosen]

    def settle(self) -> None:
        """The runs the fast path kept whole, all made RunFacts and put in `recent`."""
        for key in sorted(self.unsettled):
            self._settle(key)

    def _settle(self, key: tuple[float, int]) -> RunFacts:
        run, graph, plan = self.unsettled.pop(key)
        run.load_tries()
        facts = facts_of(run, graph, plan)
        heapq.heappush(self.recent, (key[0], key[1], facts))
        return facts


@dataclass
class PoolStats:
    name: str
    slots: int | None
    #: per try: when it could have been queued (ready or scheduled), when it started, ended,
    #: and the slots it held
    ready: array[float] = field(default_factory=lambda: array("d"))
    start: array[float] = field(default_factory=lambda: array("d"))
    end: array[float] = field(default_factory=lambda: array("d"))
    slots_used: array[int] = field(default_factory=lambda: array("q"))
    dags: Counter[str] = field(default_factory=Counter)

"""The one model every reader returns: DAGs with their dependency graphs, runs, task tries.

Times are seconds since the epoch (UTC) as floats, None where the source has none: a run that
never started, a try still queued. Tries are tuples (`TaskTry`) because a metadata database
holds millions of them and each is built once per row."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from opscope.dags.columns import TryColumns

#: Airflow's default pool: tasks that name none run in it
DEFAULT_POOL = "default_pool"

#: run states of a run that has ended
FINISHED_RUN_STATES = frozenset({"success", "failed"})


@dataclass(frozen=True)
class Graph:
    """The dependency graph of one DAG version: tasks in their declared order and the edges
    (upstream, downstream) between them."""

    tasks: tuple[str, ...]
    edges: frozenset[tuple[str, str]] = frozenset()
    #: tasks expanded at run time into map indexes (`.expand()`)
    mapped: frozenset[str] = frozenset()
    #: the pool of each task that names one other than the default
    pools: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Dag:
    dag_id: str
    #: `max_active_tasks` (`concurrency` before 2.2): task slots one run may use at once
    max_active_tasks: int | None = None
    #: graphs by DAG version id (Airflow 3's `dag_version`); None keys the only graph of
    #: Airflow 2 (the latest serialized DAG) or of an import
    graphs: Mapping[str | None, Graph] = field(default_factory=dict)
    #: version ids in the order they were created, with their numbers
    version_numbers: Mapping[str, int] = field(default_factory=dict)

    def graph_for(self, version: str | None) -> Graph | None:
        """The graph a run of `version` ran with; the newest one when that is unknown."""
        if version in self.graphs:
            return self.graphs[version]
        if not self.graphs:
            return None
        if self.version_numbers:
            newest = max(
                (v for v in self.graphs if v is not None),
                key=lambda v: self.version_numbers.get(v, 0),
                default=None,
            )
            if newest is not None:
                return self.graphs[newest]
        return next(reversed(list(self.graphs.values())))


class TaskTry(NamedTuple):
    """One try of one task instance (a map index of a mapped task is its own instance)."""

    task_id: str
    map_index: int
    try_number: int
    state: str | None
    pool: str | None
    pool_slots: int
    #: when the scheduler decided it could run (Airflow 3's `scheduled_dttm`)
    scheduled: float | None
    #: when it was handed to the executor (`queued_dttm`)
    queued: float | None
    start: float | None
    end: float | None

    @property
    def duration(self) -> float:
        if self.start is None or self.end is None:
            return 0.0
        return max(0.0, self.end - self.start)


@dataclass
class Run:
    dag_id: str
    run_id: str
    state: str | None
    run_type: str | None = None
    #: `execution_date` (Airflow 2) or `logical_date` (Airflow 3; None for manual runs)
    logical_date: float | None = None
    #: Airflow 3's `run_after`; for Airflow 2, the logical date
    run_after: float | None = None
    queued_at: float | None = None
    start: float | None = None
    end: float | None = None
    #: the DAG version the run was created with (Airflow 3), else None
    dag_version: str | None = None
    tries: list[TaskTry] = field(default_factory=list)
    #: the tries as the metadata reader received them for the aggregation, columns not yet
    #: made `TaskTry` (`opscope.dags.columns`): its fast path reads them in numpy;
    #: `load_tries` makes `tries` of them
    columns: TryColumns | None = None
    #: its place among the runs read, by start (id), when the reader hands them on in
    #: another order (the metadata reader: by DAG): what orders DAGs across the read
    read_order: int | None = None

    def load_tries(self) -> None:
        if self.columns is not None:
            self.tries.extend(tries_from_rows(self.columns.rows()))
            self.columns = None

    @property
    def duration(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return max(0.0, self.end - self.start)

    @property
    def when(self) -> float | None:
        """The time a run is placed at in history: its start, else when it was due."""
        return self.start if self.start is not None else (self.run_after or self.logical_date)


#: builds a TaskTry from a row's ten columns without a Python-level call: a million rows
_try_of = tuple.__new__


def tries_from_rows(rows: list[tuple[Any, ...]]) -> list[TaskTry]:
    """The tries of rows (run key, the ten fields of TaskTry, earlier) of Airflow 2.10+'s
    task_instance then task_instance_history: the current tries in row order, then the
    earlier ones but for a copy of a current try (a try cleared while it was current)."""
    tries: list[TaskTry] = []
    earlier: list[tuple[Any, ...]] = []
    for row in rows:
        if row[11]:
            earlier.append(row)
        else:
            tries.append(_try_of(TaskTry, row[1:11]))
    if earlier:
        seen = {(t.task_id, t.map_index, t.try_number) for t in tries}
        for row in earlier:
            key = (row[1], row[2], row[3])
            if key in seen:
                continue
            seen.add(key)
            tries.append(_try_of(TaskTry, row[1:11]))
    return tries


@dataclass(frozen=True)
class Pool:
    name: str
    slots: int


@dataclass
class Pipeline:
    """What a reader returns: DAGs, pools, and the runs, streamed one at a time (each with all
    its tries) so that a long history is never held whole."""

    #: "airflow-db", "airflow-rest" or "import"
    source: str
    #: e.g. "3.1" or "2.10+" (from the schema), "2.10.5" (from the API)
    airflow_version: str | None
    dags: dict[str, Dag]
    pools: dict[str, Pool]
    runs: Iterable[Run]
    #: the same runs with their tries left as columns (`Run.columns`), where the reader can: what
    #: the aggregation reads instead of `runs` (only one of the two may be consumed)
    raw_runs: Callable[[], Iterable[Run]] | None = None
    #: how many runs `runs` yields, when known in advance (for progress)
    run_count: int | None = None
    #: whether each DAG's runs come together, none of them after another DAG's (the
    #: metadata reader's order): the aggregation then knows when a DAG is all counted
    by_dag: bool = False
    #: how many task tries were read, filled in as `runs` is consumed
    tries_read: int = 0
    notes: list[str] = field(default_factory=list)

"""Everything the checks read, gathered in one pass over the runs: per DAG its run times,
per task its spans, shares, waits, retries and how often it was critical, the critical paths
seen, the recent runs kept whole for the simulator and the Gantt charts, and per pool the
intervals its tries waited and ran. Bounded: a run is dropped once it is counted (but for
the few kept whole), and every series keeps at most a fixed sample."""

from __future__ import annotations

import heapq
from array import array
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from opscope.dags.graph import CycleError, Plan
from opscope.dags.model import DEFAULT_POOL, FINISHED_RUN_STATES, Dag, Graph, Pipeline, Run
from opscope.dags.runs import RunFacts, facts_of, plan_for
from opscope.dags.stats import Sample

Progress = Callable[[int, int | None], None]


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
    #: (index among the DAG's successful runs, span) of each successful run it ran in: what
    #: tells which task moved when the DAG's duration did
    success_index: array[int] = field(default_factory=lambda: array("l"))
    success_span: array[float] = field(default_factory=lambda: array("d"))


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
    slowest: RunFacts | None = None
    #: runs whose graph had a cycle (analysed without their dependencies)
    cyclic_runs: int = 0

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
        return [f for _, _, f in sorted(self.recent)]

    @property
    def recent_success(self) -> list[RunFacts]:
        return [f for f in self.recent_runs if f.run.state == "success"]


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


@dataclass
class Analysis:
    dags: dict[str, DagStats]
    pools: dict[str, PoolStats]
    runs: int = 0
    tries: int = 0
    #: the reader's own notes and what the aggregation found odd
    notes: list[str] = field(default_factory=list)


def _add_run(stats: DagStats, facts: RunFacts, pools: dict[str, PoolStats], keep: int) -> None:
    run = facts.run
    stats.runs += 1
    stats.states[run.state or "unknown"] += 1
    when = run.when
    if when is not None:
        stats.first_when = when if stats.first_when is None else min(stats.first_when, when)
        stats.last_when = when if stats.last_when is None else max(stats.last_when, when)
    finished = run.state in FINISHED_RUN_STATES
    for task_id, task in facts.tasks.items():
        pool = task.pool or DEFAULT_POOL
        if task.instances == 0:
            continue
        ts = stats.task(task_id)
        ts.runs += 1
        ts.pool = pool
        ts.instances += task.instances
        if task.retries:
            ts.retried_runs += 1
            ts.retries += task.retries
            ts.retry_cost += task.retry_cost
        if task.to_queue is not None:
            ts.to_queue.add(task.to_queue)
        if task.in_queue is not None:
            ts.in_queue.add(task.in_queue)
        if task.wait is not None:
            ts.wait.add(task.wait)
        if task.state == "failed" and run.state == "failed":
            ts.failures += 1
            stats.failing_tasks[task_id] += 1
        if task.start is not None and task.end is not None:
            pool_stats = pools.get(pool)
            if pool_stats is None:
                pool_stats = pools[pool] = PoolStats(pool, None)
            since = task.ready if task.ready is not None else task.start
            pool_stats.ready.append(min(since, task.start))
            pool_stats.start.append(task.start)
            pool_stats.end.append(task.end)
            pool_stats.slots_used.append(max(1, task.pool_slots))
            pool_stats.dags[stats.dag_id] += 1
    if run.state == "failed" and when is not None:
        stats.last_failure = when if stats.last_failure is None else max(stats.last_failure, when)
    if not finished:
        return
    if run.state == "success":
        index = len(stats.success_when)
        stats.success_when.append(when or 0.0)
        stats.success_duration.append(facts.wall)
        stats.success_version.append(run.dag_version)
        for task_id, task in facts.tasks.items():
            if task.instances == 0 or task.start is None:
                continue
            ts = stats.task(task_id)
            ts.span.add(task.span)
            ts.success_index.append(index)
            ts.success_span.append(task.span)
            if facts.wall > 0:
                ts.share.add(min(1.0, task.span / facts.wall))
            ts.slack.add(facts.critical.slack.get(task_id, 0.0))
        for task_id in facts.critical.path:
            stats.task(task_id).critical_runs += 1
        stats.paths[facts.critical.path] += 1
        stats.critical_length.add(facts.critical.length)
        stats.wall.add(facts.wall)
        stats.work.add(facts.work)
        stats.critical_wait.add(facts.critical_wait)
        if stats.slowest is None or facts.wall > stats.slowest.wall:
            stats.slowest = facts
    heapq.heappush(stats.recent, (when or 0.0, stats.runs, facts))
    if len(stats.recent) > keep:
        heapq.heappop(stats.recent)


def aggregate(
    pipeline: Pipeline, *, keep_runs: int = 20, progress: Progress | None = None
) -> Analysis:
    """One pass over `pipeline.runs`."""
    dags: dict[str, DagStats] = {}
    pools = {name: PoolStats(name, pool.slots) for name, pool in sorted(pipeline.pools.items())}
    analysis = Analysis(dags=dags, pools=pools, notes=list(pipeline.notes))
    tries = 0
    runs: Iterable[Run] = pipeline.runs
    plans: dict[int, tuple[Graph, Plan | None]] = {}
    for run in runs:
        stats = dags.get(run.dag_id)
        if stats is None:
            stats = dags[run.dag_id] = DagStats(run.dag_id, pipeline.dags.get(run.dag_id))
        graph = stats.dag.graph_for(run.dag_version) if stats.dag is not None else None
        plan = None
        if graph is not None:
            known = plans.get(id(graph))
            if known is None:
                known = plans[id(graph)] = (graph, plan_for(graph))
            plan = known[1]
        try:
            facts = facts_of(run, graph, plan)
        except CycleError:
            stats.cyclic_runs += 1
            facts = facts_of(run, None)
        _add_run(stats, facts, pools, keep_runs)
        tries += len(run.tries)
        analysis.runs += 1
        if progress is not None and analysis.runs % 200 == 0:
            progress(analysis.runs, pipeline.run_count)
    for dag_id, dag in pipeline.dags.items():
        dags.setdefault(dag_id, DagStats(dag_id, dag))
    if progress is not None:
        progress(analysis.runs, pipeline.run_count)
    analysis.tries = tries
    for stats in dags.values():
        if stats.cyclic_runs:
            analysis.notes.append(
                f"{stats.dag_id}: {stats.cyclic_runs} run(s) whose dependencies form a cycle "
                "were analysed without them"
            )
    return analysis

"""What one run shows: each task's span, work, waits and tries; its critical path with every
task's slack; how many tasks ran at once. Pure: a `Run` and its `Graph` in, `RunFacts` out.

A task's time in a run is its span: from the start of its first try (of its first map index)
to the end of its last one, so retries and the instances of a mapped task count as the
wall time they took. The critical path is the longest path through the DAG by those spans."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from opscope.dags.graph import (
    CriticalPath,
    CycleError,
    Plan,
    Topology,
    critical_path,
    max_overlap,
    shared_topology,
)
from opscope.dags.model import Graph, Run, TaskTry


@dataclass(slots=True)
class TaskFacts:
    task_id: str
    start: float | None = None
    end: float | None = None
    #: time its tries ran, summed over tries and map indexes
    busy: float = 0.0
    instances: int = 0
    tries: int = 0
    #: tries after the first of each instance
    retries: int = 0
    #: wall time its instances spent before their last try: failed tries and retry delays
    retry_cost: float = 0.0
    #: final state of each instance, worst first ("failed" over "success")
    state: str | None = None
    pool: str | None = None
    pool_slots: int = 1
    #: when its upstream tasks had all ended (the run's start for the first ones)
    ready: float | None = None
    #: from ready (or Airflow 3's scheduled time) to queued, and from queued to running, of
    #: its first try; None when the source has no queued time
    to_queue: float | None = None
    in_queue: float | None = None
    #: each instance's span, by map index, for the simulator
    spans: dict[int, float] = field(default_factory=dict)
    #: the scheduled, queued and start times of its earliest first try
    first_scheduled: float | None = None
    first_queued: float | None = None
    first_start: float | None = None

    @property
    def span(self) -> float:
        if self.start is None or self.end is None:
            return 0.0
        return max(0.0, self.end - self.start)

    @property
    def wait(self) -> float | None:
        """From ready to the first try's start."""
        if self.ready is None or self.start is None:
            return None
        return max(0.0, self.start - self.ready)


_STATE_RANK = {"failed": 0, "upstream_failed": 1, "up_for_retry": 2, "skipped": 4, "success": 5}


@dataclass(slots=True)
class RunFacts:
    run: Run
    tasks: dict[str, TaskFacts]
    edges: frozenset[tuple[str, str]]
    mapped: frozenset[str]
    critical: CriticalPath
    #: run start to run end (first task start to last task end when the run has none)
    wall: float
    #: task time summed: the work, had it all run on one slot
    work: float
    start: float | None
    #: the list scheduler's replay of the run as it ran, once computed
    baseline: float | None = None
    _concurrency: int | None = None
    #: job graphs as the run ran, with their topology, by the edges dropped (`schedule_of`)
    _schedules: dict[
        frozenset[tuple[str, str]], tuple[dict[str, float], list[tuple[str, str]], Topology]
    ] = field(default_factory=dict)

    @property
    def concurrency(self) -> int:
        """Most task tries running at one moment (computed when first asked: only the runs
        kept for replays need it)."""
        if self._concurrency is None:
            self._concurrency = max_overlap(
                (t.start, t.end, 1)
                for t in self.run.tries
                if t.start is not None and t.end is not None
            )
        return self._concurrency

    @property
    def critical_wait(self) -> float:
        """Waiting (ready to start) summed along the critical path."""
        return sum(self.tasks[t].wait or 0.0 for t in self.critical.path)


def facts_of(run: Run, graph: Graph | None, plan: Plan | None = None) -> RunFacts:
    """The facts of `run` on `graph`; `plan` is the graph's precomputed order (from
    `plan_for`), which saves rebuilding it for every run."""
    tasks: dict[str, TaskFacts] = {}
    pools = graph.pools if graph is not None else {}
    if graph is not None:
        for task_id in graph.tasks:
            tasks[task_id] = TaskFacts(task_id, pool=pools.get(task_id))
    by_task: dict[str, list[TaskTry]] = {}
    for t in run.tries:
        group = by_task.get(t.task_id)
        if group is None:
            by_task[t.task_id] = [t]
        else:
            group.append(t)
    for task_id, tries in by_task.items():
        facts = tasks.get(task_id)
        if facts is None:
            facts = tasks[task_id] = TaskFacts(task_id)
        if len(tries) == 1:
            one_try(facts, tries[0])
        else:
            many_tries(facts, tries)
    edges = graph.edges if graph is not None else frozenset()
    upstream: dict[str, list[str]] = (
        plan.upstream if plan is not None and len(plan.nodes) == len(tasks) else {}
    )
    for a, b in edges if not upstream else ():
        if a in tasks and b in tasks:
            ups_of = upstream.get(b)
            if ups_of is None:
                upstream[b] = [a]
            else:
                ups_of.append(a)
    starts = [f.start for f in tasks.values() if f.start is not None]
    ends = [f.end for f in tasks.values() if f.end is not None]
    run_start = run.start if run.start is not None else (min(starts) if starts else None)
    for task_id, facts in tasks.items():
        ups = upstream.get(task_id)
        if ups:
            latest = 0.0
            for u in ups:
                end = tasks[u].end
                if end is None:
                    break
                if end > latest:
                    latest = end
            else:
                facts.ready = latest
        else:
            facts.ready = run_start
        if facts.first_queued is not None and facts.start is not None:
            scheduled = facts.first_scheduled
            since = scheduled if scheduled is not None else facts.ready
            facts.in_queue = max(0.0, (facts.first_start or facts.start) - facts.first_queued)
            if since is not None:
                facts.to_queue = max(0.0, facts.first_queued - since)
    if plan is not None and len(plan.nodes) == len(tasks):
        critical = plan.critical_path([_span(tasks[n]) for n in plan.nodes])
    else:
        critical = critical_path({t: f.span for t, f in tasks.items()}, edges)
    if run.duration is not None:
        wall = run.duration
    elif starts and ends:
        wall = max(0.0, max(ends) - min(starts))
    else:
        wall = 0.0
    return RunFacts(
        run=run,
        tasks=tasks,
        edges=edges,
        mapped=graph.mapped if graph is not None else frozenset(),
        critical=critical,
        wall=wall,
        work=sum(f.busy for f in tasks.values()),
        start=run_start,
    )


def _span(f: TaskFacts) -> float:
    start, end = f.start, f.end
    return end - start if start is not None and end is not None and end > start else 0.0


def plan_for(graph: Graph | None) -> Plan | None:
    if graph is None:
        return None
    try:
        return Plan(graph.tasks, graph.edges)
    except CycleError:
        return None


def one_try(facts: TaskFacts, t: TaskTry) -> None:
    """The common case: an unmapped task tried once."""
    facts.instances = 1
    facts.tries = 1
    facts.state = t.state
    if t.pool:
        facts.pool = t.pool
    facts.pool_slots = t.pool_slots
    if t.start is not None and t.end is not None:
        span = t.end - t.start if t.end > t.start else 0.0
        facts.spans[t.map_index] = span
        facts.start, facts.end = t.start, t.end
        facts.busy = span
    facts.first_scheduled, facts.first_queued, facts.first_start = t.scheduled, t.queued, t.start


def many_tries(facts: TaskFacts, all_tries: list[TaskTry]) -> None:
    instances: dict[int, list[TaskTry]] = {}
    for t in all_tries:
        instances.setdefault(t.map_index, []).append(t)
    for map_index, tries in instances.items():
        tries.sort(key=lambda t: t.try_number)
        facts.instances += 1
        facts.tries += len(tries)
        facts.retries += len(tries) - 1
        last = tries[-1]
        rank = _STATE_RANK.get(last.state or "", 3)
        if facts.state is None or rank < _STATE_RANK.get(facts.state, 3):
            facts.state = last.state
        if last.pool:
            facts.pool = last.pool
        facts.pool_slots = last.pool_slots
        starts = [t.start for t in tries if t.start is not None]
        ends = [t.end for t in tries if t.end is not None]
        if starts and ends:
            first, final = min(starts), max(ends)
            facts.spans[map_index] = max(0.0, final - first)
            facts.start = first if facts.start is None else min(facts.start, first)
            facts.end = final if facts.end is None else max(facts.end, final)
            last_start = last.start if last.start is not None else first
            facts.retry_cost += max(0.0, last_start - first)
        facts.busy += sum(t.duration for t in tries)
        head = tries[0]
        if head.start is not None and (facts.first_start is None or facts.first_start > head.start):
            facts.first_scheduled, facts.first_queued = head.scheduled, head.queued
            facts.first_start = head.start


def job_graph(
    facts: RunFacts,
    durations: Mapping[str, Callable[[float], float]] | None = None,
    dropped: frozenset[tuple[str, str]] = frozenset(),
) -> tuple[dict[str, float], list[tuple[str, str]]]:
    """The run as jobs for the list scheduler: one per task, or one per map index of a mapped
    task (joined by a zero-length barrier, so that n x m edges never exist), each lasting
    what it took unless `durations` maps a task to its new time (applied to what each of its
    instances took).
    `dropped` edges are left out."""
    jobs, heads, tails = _jobs(facts)
    if durations:
        _apply(jobs, facts, durations)
    return jobs, _job_edges(facts, heads, tails, dropped)


def _split(task_id: str, task: TaskFacts, mapped: frozenset[str]) -> bool:
    """Whether the task is a job per map index (and a barrier) rather than one job."""
    return task_id in mapped or len(task.spans) > 1


def _jobs(facts: RunFacts) -> tuple[dict[str, float], dict[str, list[str]], dict[str, str]]:
    """The jobs as the run ran, and each task's first jobs and last one."""
    jobs: dict[str, float] = {}
    heads: dict[str, list[str]] = {}
    tails: dict[str, str] = {}
    mapped = facts.mapped
    for task_id, task in facts.tasks.items():
        if _split(task_id, task, mapped):
            names = []
            for index, span in sorted(task.spans.items()):
                name = f"{task_id}[{index}]"
                jobs[name] = span
                names.append(name)
            barrier = f"{task_id}[*]"
            jobs[barrier] = 0.0
            heads[task_id] = names or [barrier]
            tails[task_id] = barrier
        else:
            start, end = task.start, task.end  # TaskFacts.span, inline: a job per task
            jobs[task_id] = (
                end - start if start is not None and end is not None and end > start else 0.0
            )
            heads[task_id] = [task_id]
            tails[task_id] = task_id
    return jobs, heads, tails


def _apply(
    jobs: dict[str, float], facts: RunFacts, durations: Mapping[str, Callable[[float], float]]
) -> None:
    """Each job of a task `durations` names made its new time, from what it took."""
    for task_id, override in durations.items():
        task = facts.tasks.get(task_id)
        if task is None:
            continue
        if _split(task_id, task, facts.mapped):
            for index in task.spans:
                name = f"{task_id}[{index}]"
                jobs[name] = override(jobs[name])
        else:
            jobs[task_id] = override(jobs[task_id])


def _job_edges(
    facts: RunFacts,
    heads: dict[str, list[str]],
    tails: dict[str, str],
    dropped: frozenset[tuple[str, str]],
) -> list[tuple[str, str]]:
    edges: list[tuple[str, str]] = []
    for task_id, names in heads.items():
        if tails[task_id] != task_id:
            edges.extend((n, tails[task_id]) for n in names if n != tails[task_id])
    for a, b in sorted(facts.edges):
        if (a, b) in dropped or a not in tails or b not in heads:
            continue
        into = heads[b]
        if len(into) == 1:  # b one job (not mapped): one edge, without a generator
            edges.append((tails[a], into[0]))
        else:
            edges.extend((tails[a], h) for h in into)
    return edges


def schedule_of(
    facts: RunFacts,
    durations: Mapping[str, Callable[[float], float]] | None = None,
    dropped: frozenset[tuple[str, str]] = frozenset(),
) -> tuple[dict[str, float], list[tuple[str, str]], Topology]:
    """`job_graph` with its topology for `list_schedule`. The graph as the run ran and the
    topology are kept on `facts`: every what-if of a run replays the same names and edges.
    Other times are applied to a copy of the kept jobs (never changed)."""
    known = facts._schedules.get(dropped)
    if known is None:
        jobs, heads, tails = _jobs(facts)
        edges = _job_edges(facts, heads, tails, dropped)
        known = facts._schedules[dropped] = (jobs, edges, shared_topology(jobs, edges))
    if not durations:
        return known
    if len(known[0]) != sum(
        len(t.spans) + 1 if _split(i, t, facts.mapped) else 1 for i, t in facts.tasks.items()
    ):
        # two tasks' jobs share a name (a task named like an instance, "t[0]"): which time
        # it gets depends on the order they are made in, as job_graph makes them
        jobs, edges = job_graph(facts, durations, dropped)
        return jobs, edges, known[2]
    jobs = dict(known[0])
    _apply(jobs, facts, durations)
    return jobs, known[1], known[2]

"""Everything the checks read, gathered in one pass over the runs: per DAG its run times,
per task its spans, shares, waits, retries and how often it was critical, the critical paths
seen, the recent runs kept whole for the simulator and the Gantt charts, and per pool the
intervals its tries waited and ran. Bounded: a run is dropped once it is counted (but for
the few kept whole), and every series keeps at most a fixed sample."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from opscope.dags.figures import DagStats, PoolStats, TaskStats
from opscope.dags.graph import CycleError, Plan
from opscope.dags.model import DEFAULT_POOL, FINISHED_RUN_STATES, Graph, Pipeline, Run
from opscope.dags.runs import RunFacts, facts_of, plan_for
from opscope.nogc import paused_gc

Progress = Callable[[int, int | None], None]


@dataclass
class Analysis:
    dags: dict[str, DagStats]
    pools: dict[str, PoolStats]
    runs: int = 0
    tries: int = 0
    #: the reader's own notes and what the aggregation found odd
    notes: list[str] = field(default_factory=list)


def _add_run(
    stats: DagStats,
    facts: RunFacts,
    pools: dict[str, PoolStats],
    keep: int,
    first_seen: dict[tuple[str, str], int] | None = None,
    seq: int = 0,
) -> None:
    """Count one run in its DAG's and its pools' figures. Called once per run with every
    task of it: written for speed (locals, no property calls), the one hot loop there is."""
    run = facts.run
    state = run.state
    stats.count_run(run)
    when = run.when
    success = state == "success"
    failed = state == "failed"
    wall = facts.wall
    slack = facts.critical.slack
    index = len(stats.success_when)
    tasks = stats.tasks
    used: dict[str, int] = {}
    for task_id, task in facts.tasks.items():
        if not task.instances:
            continue
        ts = tasks.get(task_id)
        if ts is None:
            ts = tasks[task_id] = TaskStats(task_id)
        pool = task.pool or DEFAULT_POOL
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
        if failed and task.state == "failed":
            ts.failures += 1
            stats.failing_tasks[task_id] += 1
        start, end = task.start, task.end
        if start is None or end is None:
            continue
        ready = task.ready
        if ready is not None:
            ts.wait.add(start - ready if start > ready else 0.0)
        else:
            ready = start
        pool_stats = pools.get(pool)
        if pool_stats is None:
            pool_stats = pools[pool] = PoolStats(pool, None)
        pool_stats.ready.append(ready if ready < start else start)
        pool_stats.start.append(start)
        pool_stats.end.append(end)
        pool_stats.slots_used.append(task.pool_slots if task.pool_slots > 1 else 1)
        used[pool] = used.get(pool, 0) + 1
        if success:
            span = end - start if end > start else 0.0
            ts.span.add(span)
            ts.success_index.append(index)
            if wall > 0:
                ts.share.add(span / wall if span < wall else 1.0)
            ts.slack.add(slack.get(task_id, 0.0))
    for pool, count in used.items():
        pools[pool].dags[stats.dag_id] += count
        if first_seen is not None:
            first_seen.setdefault((pool, stats.dag_id), seq)
    if failed and when is not None:
        stats.last_failure = when if stats.last_failure is None else max(stats.last_failure, when)
    if state not in FINISHED_RUN_STATES:
        return
    if success:
        stats.success_when.append(when or 0.0)
        stats.success_duration.append(wall)
        stats.success_version.append(run.dag_version)
        for task_id in facts.critical.path:
            stats.task(task_id).critical_runs += 1
        stats.paths[facts.critical.path] += 1
        stats.critical_length.add(facts.critical.length)
        stats.wall.add(wall)
        stats.work.add(facts.work)
        stats.critical_wait.add(facts.critical_wait)
        if stats.slowest is None or wall > stats.slowest.wall:
            stats.slowest = facts
    heapq.heappush(stats.recent, (when or 0.0, stats.runs, facts))
    if len(stats.recent) > keep:
        heapq.heappop(stats.recent)


def aggregate(
    pipeline: Pipeline,
    *,
    keep_runs: int = 20,
    progress: Progress | None = None,
    counted: Callable[[DagStats], None] | None = None,
) -> Analysis:
    """One pass over `pipeline.runs`. `counted` is called with each DAG whose runs are all
    counted before the pass ends (where `pipeline.by_dag` says when that is)."""
    pools = {name: PoolStats(name, pool.slots) for name, pool in sorted(pipeline.pools.items())}
    analysis = Analysis(dags={}, pools=pools, notes=list(pipeline.notes))
    with paused_gc():
        _consume(pipeline, analysis, keep_runs, progress, counted if pipeline.by_dag else None)
    for dag_id, dag in pipeline.dags.items():
        analysis.dags.setdefault(dag_id, DagStats(dag_id, dag))
    if progress is not None:
        progress(analysis.runs, pipeline.run_count)
    for stats in analysis.dags.values():
        if stats.cyclic_runs:
            analysis.notes.append(
                f"{stats.dag_id}: {stats.cyclic_runs} run(s) whose dependencies form a cycle "
                "were analysed without them"
            )
    return analysis


#: runs of one DAG counted together by the fast path, and rows held for it in all
BATCH_RUNS = 256
BATCH_ROWS = 200_000


def _consume(
    pipeline: Pipeline,
    analysis: Analysis,
    keep_runs: int,
    progress: Progress | None,
    counted: Callable[[DagStats], None] | None,
) -> None:
    # the fast path brings numpy: imported by the analysis, not by every command's start-up
    from opscope.dags.batch import Batch, fits, flush

    dags = analysis.dags
    plans: dict[int, tuple[Graph, Plan | None]] = {}
    runs: Iterable[Run] = pipeline.raw_runs() if pipeline.raw_runs is not None else pipeline.runs
    # about a hundred updates whatever the length (a REST read takes a request per run)
    every = max(1, min(200, (pipeline.run_count or 0) // 100))
    pools = analysis.pools
    # the DAGs of a pool in the order the runs were read (batches are counted out of it)
    first_seen: dict[tuple[str, str], int] = {}
    pending: dict[str, Batch] = {}
    held = 0

    def flush_one(batch: Batch) -> None:
        nonlocal held
        del pending[batch.stats.dag_id]
        held -= batch.rows
        analysis.tries += flush(batch, pools, keep_runs, first_seen)

    # each DAG's first run in the read order: the order of `analysis.dags`
    first_run: dict[str, int] = {}
    last: str | None = None
    for place, run in enumerate(runs):
        if counted is not None and run.dag_id != last:
            if last is not None:  # the runs come by DAG: `last` is all counted
                done = pending.get(last)
                if done is not None:
                    flush_one(done)
                counted(dags[last])
            last = run.dag_id
        seq = place if run.read_order is None else run.read_order
        stats = dags.get(run.dag_id)
        if stats is None:
            stats = dags[run.dag_id] = DagStats(run.dag_id, pipeline.dags.get(run.dag_id))
            first_run[run.dag_id] = seq
        elif seq < first_run[run.dag_id]:
            first_run[run.dag_id] = seq
        graph = stats.dag.graph_for(run.dag_version) if stats.dag is not None else None
        plan = None
        if graph is not None:
            known = plans.get(id(graph))
            if known is None:
                known = plans[id(graph)] = (graph, plan_for(graph))
            plan = known[1]
        batch = pending.get(run.dag_id)
        if batch is not None and batch.plan is not plan:
            flush_one(batch)
            batch = None
        where = fits(run, graph, plan)
        if where is not None:  # so graph and plan are there
            assert graph is not None and plan is not None
            if batch is None:
                batch = pending[run.dag_id] = Batch(stats, graph, plan)
            batch.runs.append(run)
            batch.tasks.append(where)
            batch.seqs.append(seq)
            rows = len(run.columns or ())
            batch.rows += rows
            held += rows
            if len(batch.runs) >= BATCH_RUNS:
                flush_one(batch)
            if held > BATCH_ROWS:
                for other in list(pending.values()):
                    flush_one(other)
        else:
            if batch is not None:
                flush_one(batch)
            stats.settle()  # before _add_run pushes onto `recent`
            run.load_tries()
            try:
                facts = facts_of(run, graph, plan)
            except CycleError:
                stats.cyclic_runs += 1
                facts = facts_of(run, None)
            _add_run(stats, facts, pools, keep_runs, first_seen, seq)
            analysis.tries += len(run.tries)
        analysis.runs += 1
        if progress is not None and analysis.runs % every == 0:
            progress(analysis.runs, pipeline.run_count)
    for other in list(pending.values()):
        flush_one(other)
    ordered = sorted(dags.items(), key=lambda kv: first_run[kv[0]])
    dags.clear()
    dags.update(ordered)
    for pool in pools.values():
        pool.dags = Counter(
            dict(sorted(pool.dags.items(), key=lambda kv: first_seen[(pool.name, kv[0])]))
        )

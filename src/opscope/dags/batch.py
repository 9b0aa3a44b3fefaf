"""The aggregation's common case in numpy: consecutive runs of one DAG on one graph, their
tries still the metadata reader's columns (`opscope.dags.columns`), each read for a whole
batch in one numpy call. The runs become the columns of matrices with a row per task of the
graph (NaN where `facts_of` has None), and what `facts_of` and `_add_run` compute task by
task is computed a row at a time over all the runs, with the same float operations in the
same order, so that every figure is the one the plain path gives (tests hold the two side
by side). Tasks tried more than once in a run (a retry, map indexes) go
through `facts_of`'s own code, and the runs kept whole (the recent ones, the slowest)
through `facts_of` itself.

A million task tries take about 1 us each this way, against 4 us through `facts_of`."""

from __future__ import annotations

import heapq
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from opscope.dags.columns import HEADER, NAMES, TYPES, Part, decode_texts, element, seconds
from opscope.dags.figures import DagStats, PoolStats, TaskStats
from opscope.dags.graph import EPSILON, Plan
from opscope.dags.model import DEFAULT_POOL, Graph, Run, tries_from_rows
from opscope.dags.runs import RunFacts, TaskFacts, facts_of, many_tries, one_try

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.intp]

NAN = float("nan")

#: critical paths a batch checks all its runs against at once (`_follows`), the first
#: successful run's and the next ones' while one is taken by WORTH_A_CHECK runs or more:
#: a check costs a few walks of one run
SHARED_PATHS = 8
WORTH_A_CHECK = 4


@dataclass
class Batch:
    """Runs of one DAG, in the order read, all on `graph` (whose `plan` exists)."""

    stats: DagStats
    graph: Graph
    plan: Plan
    runs: list[Run] = field(default_factory=list)
    #: each run's tries' task indexes in the plan (`fits`)
    tasks: list[Ints] = field(default_factory=list)
    #: each run's place in the whole read (what orders the DAGs of a pool)
    seqs: list[int] = field(default_factory=list)
    rows: int = 0


def fits(run: Run, graph: Graph | None, plan: Plan | None) -> Ints | None:
    """Where each of the run's tries goes in the plan (the index of its task), when `run`
    can take the fast path: columns without a NULL number, and a plan holding every task
    it tried; else None. The batch keeps these indexes, so each list of tasks is looked up
    once."""
    columns = run.columns
    if columns is None or plan is None or graph is None or not plan.nodes:
        return None
    if len(plan.index) != len(plan.nodes):
        return None  # a task declared twice: facts_of goes the general way
    found = []
    for part in columns.parts:
        if not part.regular:
            return None
        where = task_indexes(plan, part)
        if where is None:
            return None
        found.append(where)
    return found[0] if len(found) == 1 else np.concatenate(found)


def _per_text(
    parts: list[Part], name: str, value: Callable[[str | None], Any], dtype: type[Any]
) -> npt.NDArray[Any]:
    """`value` of each try's text in column `name`, end to end: each distinct list (most
    runs' lists of states and pools are another's) decoded and mapped once, in the order
    the lists first come."""
    made: dict[bytes, npt.NDArray[Any]] = {}
    for part in parts:
        raw = part.raw(name)
        if raw not in made:
            made[raw] = np.array([value(t) for t in decode_texts(raw)], dtype=dtype)
    if not parts:
        return np.zeros(0, dtype=dtype)
    return np.concatenate([made[part.raw(name)] for part in parts])


#: each plan's task indexes by the binary form of a part's task ids (most runs of a DAG
#: share one list); a plan keeps at most CACHED lists
_TASK_INDEXES: weakref.WeakKeyDictionary[Plan, dict[bytes, Ints | None]] = (
    weakref.WeakKeyDictionary()
)
CACHED = 64


def task_indexes(plan: Plan, part: Part) -> Ints | None:
    """Where each try of `part` goes in `plan` (its task's index), or None when the plan
    lacks one of its tasks. The current tries' lists are kept (a run's earlier tries
    seldom match another's)."""
    raw = part.raw("task_id")
    known = _TASK_INDEXES.get(plan)
    if known is None:
        known = _TASK_INDEXES[plan] = {}
    elif raw in known:
        return known[raw]
    index = plan.index
    found: Ints | None
    try:
        found = np.array([index[t] for t in decode_texts(raw)], dtype=np.intp)  # type: ignore[index]
    except KeyError:  # a task the plan does not hold (removed from the DAG since)
        found = None
    if not part.earlier:
        if len(known) >= CACHED:
            known.clear()
        known[raw] = found
    return found


def joined(parts: list[Part], name: str, dtype: type[Any]) -> npt.NDArray[Any]:
    """Column `name` of `parts` (regular ones) end to end, as `dtype`: one numpy call over
    the arrays' elements joined, whatever the number of runs."""
    k = NAMES.index(name)
    data = b"".join([memoryview(p.arrays[k])[HEADER:] for p in parts])
    values: npt.NDArray[Any] = np.frombuffer(data, element(TYPES[k]))["value"].astype(dtype)
    return values


def _max0(x: Floats) -> Floats:
    """max(0.0, x) as Python computes it: x where x > 0, else 0.0."""
    return np.where(x > 0.0, x, 0.0)


def flush(
    batch: Batch,
    pools: dict[str, PoolStats],
    keep: int,
    first_seen: dict[tuple[str, str], int],
) -> int:
    """Counts the batch's runs into its DAG's and the pools' figures; returns the tries."""

    stats, graph, plan = batch.stats, batch.graph, batch.plan
    runs = batch.runs
    nodes = plan.nodes
    n, b = len(nodes), len(runs)
    counts = [len(run.columns or ()) for run in runs]
    # every run's tries end to end: its current ones, then its earlier ones
    parts = [part for run in runs if run.columns is not None for part in run.columns.parts]
    task = np.concatenate(batch.tasks) if batch.tasks else np.zeros(0, dtype=np.intp)
    where_run = np.repeat(np.arange(b, dtype=np.intp), counts)
    # cell (task, run) in a task-major layout: a task's values over the runs are contiguous
    cell = task * b + where_run
    per_cell = np.bincount(cell, minlength=n * b)
    single = per_cell[cell] == 1

    converted: dict[str, Floats] = {}

    def column(name: str) -> Floats:
        """A time column as doubles (NaN: none), made once."""
        known = converted.get(name)
        if known is None:
            known = converted[name] = seconds(joined(parts, name, np.int64))
        return known

    start_raw, end_raw = column("start"), column("end")
    both = ~np.isnan(start_raw) & ~np.isnan(end_raw)

    def matrix(fill: float) -> Floats:
        return np.full((n, b), fill, dtype=np.float64)

    start, end, busy = matrix(NAN), matrix(NAN), matrix(0.0)
    f_sched, f_queued, f_start = matrix(NAN), matrix(NAN), matrix(NAN)
    instances = np.zeros((n, b), dtype=np.int64)
    slots = np.ones((n, b), dtype=np.int64)
    failed_state = np.zeros((n, b), dtype=np.bool_)
    # pools as codes into `pool_names` (0: none named); a task without a try keeps its
    # graph's pool
    pool_names: list[str | None] = [None]
    codes: dict[str | None, int] = {None: 0}

    def code_of(name: str | None) -> int:
        name = name or DEFAULT_POOL  # one code a pool, what the figures are kept by
        code = codes.get(name)
        if code is None:
            code = codes[name] = len(pool_names)
            pool_names.append(name)
        return code

    pool = np.array([[code_of(graph.pools.get(t))] for t in nodes], dtype=np.intp).repeat(b, 1)

    cs = cell[single]
    sb = both[single]
    start.flat[cs[sb]] = start_raw[single][sb]
    end.flat[cs[sb]] = end_raw[single][sb]
    span_raw = end_raw - start_raw
    busy.flat[cs[sb]] = np.where(span_raw[single][sb] > 0.0, span_raw[single][sb], 0.0)
    f_sched.flat[cs] = column("scheduled")[single]
    f_queued.flat[cs] = column("queued")[single]
    f_start.flat[cs] = start_raw[single]
    instances.flat[cs] = 1
    slots_raw = joined(parts, "pool_slots", np.int64)  # COALESCE'd: no NULL
    slots.flat[cs] = slots_raw[single]
    is_failed = _per_text(parts, "state", lambda s: s == "failed", np.bool_)
    failed_state.flat[cs] = is_failed[single]
    # a try's own pool, when it names one (-1: none)
    row_codes = _per_text(parts, "pool", lambda p: code_of(p) if p else -1, np.intp)
    named = single & (row_codes >= 0)
    pool.flat[cell[named]] = row_codes[named]

    # tasks tried more than once in a run: a retried task's two tries in numpy, as
    # many_tries counts them; the rest (more tries, map indexes) facts_of's own code, cell by
    # cell. Each entry: the task's row, its retries and their cost
    retried: dict[int, list[tuple[int, int, float]]] = {}
    dropped = [0] * b
    general = ~single
    pairs = _pairs(cell, per_cell, parts)
    if pairs is not None:
        lo, hi = pairs
        general[lo] = general[hi] = False
        c = cell[lo]
        sched_raw, queued_raw = column("scheduled"), column("queued")
        s_lo, s_hi, e_lo, e_hi = start_raw[lo], start_raw[hi], end_raw[lo], end_raw[hi]
        # min() and max() of the times there are, the first try's first on a tie
        first = np.where(
            np.isnan(s_lo), s_hi, np.where(np.isnan(s_hi) | ~(s_hi < s_lo), s_lo, s_hi)
        )
        final = np.where(
            np.isnan(e_lo), e_hi, np.where(np.isnan(e_hi) | ~(e_hi > e_lo), e_lo, e_hi)
        )
        spanned = ~np.isnan(first) & ~np.isnan(final)
        start.flat[c[spanned]] = first[spanned]
        end.flat[c[spanned]] = final[spanned]
        cost = np.where(spanned, _max0(np.where(np.isnan(s_hi), first, s_hi) - first), 0.0)

        def took(s: Floats, e: Floats) -> Floats:  # TaskTry.duration
            return np.where(np.isnan(s) | np.isnan(e), 0.0, _max0(e - s))

        busy.flat[c] = took(s_lo, e_lo) + took(s_hi, e_hi)
        f_sched.flat[c] = np.where(np.isnan(s_lo), NAN, sched_raw[lo])
        f_queued.flat[c] = np.where(np.isnan(s_lo), NAN, queued_raw[lo])
        f_start.flat[c] = s_lo
        instances.flat[c] = 1
        slots.flat[c] = slots_raw[hi]
        failed_state.flat[c] = is_failed[hi]
        pool.flat[c] = np.where(row_codes[hi] >= 0, row_codes[hi], pool.flat[c])
        for k, r, spent in zip((c // b).tolist(), (c % b).tolist(), cost.tolist(), strict=True):
            retried.setdefault(r, []).append((k, 1, spent))
    multi = np.flatnonzero(general)
    if len(multi):
        # the rows of the runs that have such tasks, made once a run
        first_row: list[int] = [0, *np.cumsum(counts).tolist()]
        run_rows: dict[int, list[tuple[Any, ...]]] = {}

        def row_at(k: int) -> tuple[Any, ...]:
            r = int(where_run[k])
            rows = run_rows.get(r)
            if rows is None:
                columns = runs[r].columns
                rows = run_rows[r] = columns.rows() if columns is not None else []
            return rows[k - first_row[r]]

        order = multi[np.argsort(cell[multi], kind="stable")]
        bounds = np.flatnonzero(np.diff(cell[order])) + 1
        for group in np.split(order, bounds):
            c0 = int(cell[group[0]])
            i, r = divmod(c0, b)
            rows = [row_at(k) for k in group.tolist()]
            tries = tries_from_rows(rows)
            dropped[r] += len(rows) - len(tries)
            facts = TaskFacts(nodes[i], pool=graph.pools.get(nodes[i]))
            if len(tries) == 1:
                one_try(facts, tries[0])
            else:
                many_tries(facts, tries)
            if facts.start is not None:
                start[i, r], end[i, r] = facts.start, facts.end
            busy[i, r] = facts.busy
            f_sched[i, r] = NAN if facts.first_scheduled is None else facts.first_scheduled
            f_queued[i, r] = NAN if facts.first_queued is None else facts.first_queued
            f_start[i, r] = NAN if facts.first_start is None else facts.first_start
            instances[i, r] = facts.instances
            slots[i, r] = facts.pool_slots
            failed_state[i, r] = facts.state == "failed"
            pool[i, r] = code_of(facts.pool)
            if facts.retries:
                retried.setdefault(r, []).append((i, facts.retries, facts.retry_cost))

    timed = ~np.isnan(start)
    span = np.where(timed & (end > start), end - start, 0.0)

    # the run's start: its own, else its first task's
    run_start = np.array([NAN if run.start is None else run.start for run in runs])
    no_start = np.isnan(run_start)
    if no_start.any():
        first = np.where(timed, start, np.inf).min(axis=0)
        first = np.where(np.isfinite(first), first, NAN)
        run_start = np.where(no_start, first, run_start)
    layers = _layers(plan)
    # a sentinel row past the tasks (n) pads the neighbour lists: -inf under a max, +inf
    # under a min, so a level's tasks take a few numpy calls whatever their degrees
    below = np.full((1, b), -np.inf)
    ready = matrix(NAN)
    ready[layers.sources] = run_start
    end_x = np.vstack([end, below])
    for level in layers.forward:
        for group, preds in level:
            ready[group] = np.maximum(0.0, end_x[preds].max(axis=1))
    queued_ok = ~np.isnan(f_queued) & timed
    since = np.where(np.isnan(f_sched), ready, f_sched)
    first_start = np.where(np.isnan(f_start) | (f_start == 0.0), start, f_start)
    in_queue = np.where(queued_ok, _max0(first_start - f_queued), NAN)
    to_queue = np.where(queued_ok & ~np.isnan(since), _max0(f_queued - since), NAN)
    waits = np.where(timed & ~np.isnan(ready), _max0(start - ready), NAN)

    # the critical path of every run at once (Plan.critical_path, a task at a time)
    es = matrix(0.0)
    ef_x = np.vstack([span, below])  # a task without upstream ones starts at 0
    for level in layers.forward:
        for group, preds in level:
            best = np.maximum(0.0, ef_x[preds].max(axis=1))
            es[group] = best
            ef_x[group] = best + span[group]
    ef = ef_x[:n]
    length = ef.max(axis=0)
    lf_x = np.full((n + 1, b), np.inf)
    lf_x[layers.sinks] = length
    span_x = np.vstack([span, np.zeros((1, b))])
    for level in layers.backward:
        for group, succs in level:
            lf_x[group] = np.minimum(length, (lf_x[succs] - span_x[succs]).min(axis=1))
    lf = lf_x[:n]
    tolerance = EPSILON * np.maximum(1.0, length)
    gap = lf - ef
    slack = np.where(gap > tolerance, gap, 0.0)

    has = instances > 0
    wall = np.empty(b)
    any_timed: Bools = np.asarray(timed.any(axis=0))
    spread = np.where(timed, end, -np.inf).max(axis=0) - np.where(timed, start, np.inf).min(axis=0)
    for r, run in enumerate(runs):
        duration = run.duration
        if duration is not None:
            wall[r] = duration
        elif any_timed[r]:
            wall[r] = max(0.0, float(spread[r]))
        else:
            wall[r] = 0.0

    length_runs = length.tolist()
    # each run's work as sum() adds its tasks' busy times: from 0, one task after the other
    # (accumulate adds in order, where sum() of numpy adds pairwise)
    work_runs = np.add.accumulate(np.vstack([np.zeros((1, b)), busy]), axis=0)[-1].tolist()
    # where each run's walk starts: its first task that ends last
    ends_last = np.argmax(ef >= length - EPSILON, axis=0)
    last_ending = ends_last.tolist()
    wall_runs = wall.tolist()

    def path_of(r: int) -> list[int]:
        return plan.walk_back(last_ending[r], es[:, r].tolist(), ef[:, r].tolist())

    # most runs of a DAG version take one of a few critical paths: the first successful
    # run's is walked and every run checked against it at once, then the first run's that
    # took none of those, while a path is shared by enough runs to be worth it; the others
    # walk their own
    left = np.zeros(b, dtype=np.bool_)
    left[[r for r, run in enumerate(runs) if run.state == "success"]] = True
    taken: list[int] = [-1] * b  # each run's index in `shared`, -1: its own
    shared: list[tuple[tuple[str, ...], list[float]]] = []
    while left.any() and len(shared) < SHARED_PATHS:
        walker = int(np.argmax(left))
        walked = tuple(path_of(walker))
        follows = _follows(plan, walked, ends_last, es, ef) & left
        left[walker] = False
        left &= ~follows
        # sum() of the waits along the path, first task first (NaN: 0.0), for every run
        summed = np.zeros(b)
        for i in walked:
            summed = summed + np.where(np.isnan(waits[i]), 0.0, waits[i])
        for r in np.flatnonzero(follows).tolist():
            taken[r] = len(shared)
        shared.append((tuple(nodes[i] for i in walked), summed.tolist()))
        if int(follows.sum()) < WORTH_A_CHECK:
            break
    # the runs, one at a time, in order: what is counted per run, and in which order tasks
    # first appear
    tasks = stats.tasks
    missing = [i for i in range(n) if nodes[i] not in tasks]
    success_at = np.full(b, -1, dtype=np.int64)
    finished: list[tuple[float, int, int]] = []
    tries_total = 0
    failed_runs = np.zeros(b, dtype=np.bool_)
    success_runs = np.zeros(b, dtype=np.bool_)
    path_runs: dict[tuple[str, ...], int] = {}
    for r, run in enumerate(runs):
        state = run.state
        stats.count_run(run)
        when = run.when
        success = state == "success"
        failed = state == "failed"
        tries_total += counts[r] - dropped[r]
        if missing:
            for i in missing:
                if has[i, r]:
                    tasks[nodes[i]] = TaskStats(nodes[i])
            missing = [i for i in missing if nodes[i] not in tasks]
        for i, retries, spent in retried.get(r, ()):
            ts = tasks[nodes[i]]
            ts.retried_runs += 1
            ts.retries += retries
            ts.retry_cost += spent
        if failed:
            failed_runs[r] = True
            for i in np.flatnonzero(failed_state[:, r] & has[:, r]).tolist():
                tasks[nodes[i]].failures += 1
                stats.failing_tasks[nodes[i]] += 1
        if failed and when is not None:
            stats.last_failure = (
                when if stats.last_failure is None else max(stats.last_failure, when)
            )
        if state not in ("success", "failed"):
            continue
        if success:
            success_runs[r] = True
            success_at[r] = len(stats.success_when)
            w = wall_runs[r]
            stats.success_when.append(when or 0.0)
            stats.success_duration.append(w)
            stats.success_version.append(run.dag_version)
            k = taken[r]
            if k >= 0:
                path, wait = shared[k][0], shared[k][1][r]
            else:
                on_path = path_of(r)
                path = tuple(nodes[i] for i in on_path)
                # TaskFacts.wait or 0.0: NaN is None
                wait = sum(_or0(x) for x in waits[on_path, r].tolist())
            # counted after the loop, in the order first taken (which is when a task that
            # has not appeared yet appears)
            if path in path_runs:
                path_runs[path] += 1
            else:
                path_runs[path] = 1
                for task_id in path:
                    stats.task(task_id)
                if missing:
                    missing = [i for i in missing if nodes[i] not in tasks]
            stats.critical_length.add(length_runs[r])
            stats.wall.add(w)
            stats.work.add(work_runs[r])
            stats.critical_wait.add(wait)
        finished.append((when or 0.0, stats.runs, r))

    for path, count in path_runs.items():
        stats.paths[path] += count
        for task_id in path:
            tasks[task_id].critical_runs += count

    # per task, over the runs: the samples in run order
    share = np.where(span < wall, span / np.where(wall > 0, wall, 1.0), 1.0)
    wall_pos = wall > 0
    counted = has & timed
    good = counted & success_runs
    # each sample's values of all tasks at once (task-major: a task's are together), then
    # a slice per task
    samples = [
        _Pieces(to_queue, has & ~np.isnan(to_queue)),
        _Pieces(in_queue, has & ~np.isnan(in_queue)),
        _Pieces(waits, counted & ~np.isnan(waits)),
        _Pieces(span, good),
        _Pieces(share, good & wall_pos),
        _Pieces(slack, good),
        _Pieces(np.broadcast_to(success_at, (n, b)), good),
    ]
    runs_of = has.sum(axis=1).tolist()
    instances_of = instances.sum(axis=1).tolist()
    last_run = (b - 1 - np.argmax(has[:, ::-1], axis=1)).tolist()
    for i, name in enumerate(nodes):
        if not runs_of[i]:
            continue
        ts = tasks[name]
        ts.runs += runs_of[i]
        ts.instances += instances_of[i]
        ts.pool = pool_names[int(pool[i, last_run[i]])] or DEFAULT_POOL
        for piece, target in zip(
            samples,
            (
                ts.to_queue.values,
                ts.in_queue.values,
                ts.wait.values,
                ts.span.values,
                ts.share.values,
                ts.slack.values,
                ts.success_index,
            ),
            strict=True,
        ):
            piece.into(i, target)

    # per pool: every timed task of every run, run by run
    ready_pool = np.where(np.isnan(ready), start, ready)
    ready_pool = np.where(ready_pool < start, ready_pool, start)
    pool_t = pool.T
    counted_t = counted.T
    # the pools named, in code order (what np.unique gave, without its sort)
    named_pools = np.bincount(pool_t[counted_t], minlength=len(pool_names))
    for code in np.flatnonzero(named_pools).tolist():
        name = pool_names[code] or DEFAULT_POOL
        mask = counted_t & (pool_t == code)
        ps = pools.get(name)
        if ps is None:
            ps = pools[name] = PoolStats(name, None)
        _extend(ps.ready, ready_pool.T[mask])
        _extend(ps.start, start.T[mask])
        _extend(ps.end, end.T[mask])
        ps.slots_used.frombytes(np.maximum(slots.T[mask], 1).astype(np.int64).tobytes())
        per_run = mask.sum(axis=1)
        ps.dags[stats.dag_id] += int(per_run.sum())
        first_run = int(np.flatnonzero(per_run)[0])
        first_seen.setdefault((name, stats.dag_id), batch.seqs[first_run])

    # the runs kept whole: the slowest success, and the latest finished ones
    if success_runs.any():
        best_r = int(np.flatnonzero(success_runs)[np.argmax(wall[success_runs])])
        if stats.slowest is None or wall_runs[best_r] > stats.slowest.wall:
            stats.slowest = _facts(runs[best_r], graph, plan)
    # the heap keeps the `keep` latest by (when, order read), of the heap and the batch; the
    # batch's are made RunFacts when asked for (`DagStats.latest`): most give way to later ones
    old = {(w, s): f for w, s, f in stats.recent}
    candidates: list[tuple[float, int, int]] = [(w, s, -1) for w, s in old]
    candidates += [(w, s, -2) for w, s in stats.unsettled]
    candidates += finished
    recent: list[tuple[float, int, RunFacts]] = []
    unsettled: dict[tuple[float, int], tuple[Run, Graph, Plan]] = {}
    for w, s, r in heapq.nlargest(keep, candidates):
        if r == -1:
            recent.append((w, s, old[(w, s)]))
        elif r == -2:
            unsettled[(w, s)] = stats.unsettled[(w, s)]
        else:
            unsettled[(w, s)] = (runs[r], graph, plan)
    heapq.heapify(recent)
    stats.recent = recent
    stats.unsettled = unsettled
    return tries_total


def _pairs(
    cell: npt.NDArray[np.intp], per_cell: npt.NDArray[np.intp], parts: list[Part]
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]] | None:
    """The rows of the cells holding two tries of one instance (a task retried once): the
    earlier try's and the later one's (by try number), or None when there are none. Two
    rows of one map index and different try numbers are both tries (tries_from_rows drops
    only a copy of a current try) of one instance, which is what many_tries counts."""
    two = np.flatnonzero(per_cell[cell] == 2)
    if not len(two):
        return None
    map_index = joined(parts, "map_index", np.int64)
    number = joined(parts, "try_number", np.int64)
    a, z = two[np.argsort(cell[two], kind="stable")].reshape(-1, 2).T
    ok = (map_index[a] == map_index[z]) & (number[a] != number[z])
    a, z = a[ok], z[ok]
    later = number[z] > number[a]
    return np.where(later, a, z), np.where(later, z, a)


@dataclass(frozen=True)
class _Layers:
    """A plan's tasks in levels for the passes over all runs at once: `forward` by depth
    (each after its upstream tasks), `backward` by height (each after its downstream ones),
    each level's tasks grouped by degree with their neighbours padded to the group's width
    with the sentinel index n. Tasks without upstream tasks are `sources`, without
    downstream ones `sinks`: neither is in a level."""

    sources: Ints
    sinks: Ints
    forward: list[list[tuple[Ints, Ints]]]
    backward: list[list[tuple[Ints, Ints]]]


_LAYERS: weakref.WeakKeyDictionary[Plan, _Layers] = weakref.WeakKeyDictionary()


def _layers(plan: Plan) -> _Layers:
    known = _LAYERS.get(plan)
    if known is None:
        known = _LAYERS[plan] = _Layers(
            np.array([v for v in range(len(plan.nodes)) if not plan.preds[v]], dtype=np.intp),
            np.array([v for v in range(len(plan.nodes)) if not plan.succs[v]], dtype=np.intp),
            _levels(plan.order, plan.preds, len(plan.nodes)),
            _levels(plan.order[::-1], plan.succs, len(plan.nodes)),
        )
    return known


def _levels(order: list[int], links: list[list[int]], n: int) -> list[list[tuple[Ints, Ints]]]:
    """The tasks with `links` (upstream or downstream ones), by how many links deep they
    are along `order`; in a level, by degree rounded up to a power of two, each group's
    links padded with n to its width (so a task of a thousand links pads no other)."""
    depth = [0] * n
    for v in order:
        if links[v]:
            depth[v] = 1 + max(depth[u] for u in links[v])
    levels: list[dict[int, list[int]]] = []
    for v in order:
        if links[v]:
            while len(levels) < depth[v]:
                levels.append({})
            width = 1 << (len(links[v]) - 1).bit_length()
            levels[depth[v] - 1].setdefault(width, []).append(v)
    out: list[list[tuple[Ints, Ints]]] = []
    for level in levels:
        groups = []
        for width, group in sorted(level.items()):
            padded = [links[v] + [n] * (width - len(links[v])) for v in group]
            groups.append((np.array(group, dtype=np.intp), np.array(padded, dtype=np.intp)))
        out.append(groups)
    return out


def _follows(
    plan: Plan, path: tuple[int, ...], last: npt.NDArray[np.intp], es: Floats, ef: Floats
) -> Bools:
    """Which runs (columns of `es` and `ef`) `Plan.walk_back` takes along `path`: each
    step's comparisons made for all runs at once, on the same doubles."""
    ok: Bools = last == path[-1]
    back = path[::-1]
    for at, node in enumerate(back):
        preds = sorted(plan.preds[node])
        if not preds:
            break  # the walk ends here: path's first node has no upstream task
        finish = ef[preds]
        best = finish.max(axis=0)
        goes_on = ~(best < es[node] - EPSILON)
        if at + 1 == len(back):
            ok &= ~goes_on  # the walk must stop at path's first node
            break
        pick = np.asarray(preds, dtype=np.intp)[np.argmax(finish >= best - EPSILON, axis=0)]
        ok &= goes_on & (pick == back[at + 1])
    return ok


def _or0(x: float) -> float:
    return x if x == x else 0.0


def _facts(run: Run, graph: Graph, plan: Plan) -> RunFacts:
    run.load_tries()
    return facts_of(run, graph, plan)


class _Pieces:
    """`values[mask]` of a task-major matrix as one buffer, cut a task (row) at a time."""

    __slots__ = ("bounds", "data", "width")

    def __init__(self, values: npt.NDArray[Any], mask: Bools) -> None:
        picked = np.ascontiguousarray(values[mask])
        self.width = picked.itemsize
        self.data = memoryview(picked.tobytes())
        self.bounds = [0, *np.cumsum(mask.sum(axis=1)).tolist()]

    def into(self, row: int, target: Any) -> None:
        lo, hi = self.bounds[row], self.bounds[row + 1]
        if hi > lo:
            target.frombytes(self.data[lo * self.width : hi * self.width])


def _extend(target: Any, values: Floats) -> None:
    if len(values):
        target.frombytes(np.ascontiguousarray(values, dtype=np.float64).tobytes())

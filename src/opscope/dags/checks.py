"""The pipeline checks. Each reads the aggregated history in a `DagsContext` and says what to
change: slots, pools, a task to split or fix, a dependency to drop; the what-if replays they
quote are those of `opscope dags simulate`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from opscope.checks import Skipped
from opscope.dags.context import ADVICE_RUNS, KIND, DagsContext, faster
from opscope.dags.figures import DagStats
from opscope.dags.simulate import WhatIf
from opscope.dags.stats import change_point, median, quantile, trend_per_day
from opscope.dags.sweep import sweeps
from opscope.dags.timefmt import instant, rounded, seconds_text
from opscope.findings import Finding, Severity

if TYPE_CHECKING:
    pass

Results = Iterator[Finding | Skipped]


def _finding(check: Any, ctx: DagsContext, severity: Severity, obj: str, **fields: Any) -> Finding:
    return Finding.make(
        check=check.id,
        category=check.category,
        severity=severity,
        target=ctx.target,
        object=obj,
        **fields,
    )


def _simulate_hint(dag_id: str, args: str) -> str:
    return f"opscope dags simulate {dag_id} {args}"


def _successful(stats: DagStats) -> tuple[list[float], list[float], list[str | None]]:
    """Successful runs' (when, duration, version), oldest first."""
    order = sorted(range(len(stats.success_when)), key=stats.success_when.__getitem__)
    return (
        [stats.success_when[i] for i in order],
        [stats.success_duration[i] for i in order],
        [stats.success_version[i] for i in order],
    )


class SlowDag:
    id = "slow_dag"
    category = "pipelines"
    kind = KIND
    summary = "A DAG's p95 run time over its successful runs is at least `slow_dag_s`."

    def run(self, ctx: DagsContext) -> Results:
        th = ctx.thresholds
        for stats in ctx.dags():
            when, durations, _ = _successful(stats)
            if len(durations) < th.min_runs:
                continue
            p50, p95 = quantile(durations, 0.5) or 0.0, quantile(durations, 0.95) or 0.0
            if p95 < th.slow_dag_s:
                continue
            slope = trend_per_day(when, durations)
            weekly = (slope * 7 / p50 * 100) if slope is not None and p50 > 0 else None
            trend = ""
            if weekly is not None and abs(weekly) >= 1:
                trend = f", {'growing' if weekly > 0 else 'shrinking'} {abs(weekly):.0f}% a week"
            yield _finding(
                self,
                ctx,
                Severity.warning,
                stats.dag_id,
                title=f"DAG {stats.dag_id} takes {seconds_text(p95)} at p95 "
                f"(p50 {seconds_text(p50)}) over {len(durations)} runs{trend}",
                detail="Its run time, from the run's start to its end, over the successful "
                "runs read.",
                evidence={
                    "runs": len(durations),
                    "p50_s": rounded(p50),
                    "p95_s": rounded(p95),
                    "max_s": rounded(max(durations)),
                    "trend_s_per_day": rounded(slope),
                    "trend_pct_per_week": rounded(weekly, 1),
                    "first_run": instant(when[0]),
                    "last_run": instant(when[-1]),
                },
                recommendation="See its critical_path finding for the tasks that decide when it "
                "ends, and low_parallelism for what more slots would bring.",
            )


class DagDurationRegression:
    id = "dag_duration_regression"
    category = "pipelines"
    kind = KIND
    summary = (
        "A DAG's successful runs became at least `regression_ratio` slower (median after vs "
        "before) from one run on, consistently, preferring the first run of a new DAG version."
    )

    def run(self, ctx: DagsContext) -> Results:
        th = ctx.thresholds
        for stats in ctx.dags():
            when, durations, versions = _successful(stats)
            if len(durations) < 2 * th.regression_min_runs:
                continue
            preferred = [
                i for i in range(1, len(versions)) if versions[i] != versions[i - 1] and versions[i]
            ]
            cp = change_point(durations, min_segment=th.regression_min_runs, preferred=preferred)
            if cp is None or cp.ratio < th.regression_ratio:
                continue
            if cp.consistency < th.regression_consistency:
                continue
            version_change = cp.index in preferred
            numbers = stats.dag.version_numbers if stats.dag is not None else {}
            before_v, after_v = versions[cp.index - 1], versions[cp.index]
            grew = _tasks_that_grew(stats, when, cp.index)
            evidence: dict[str, Any] = {
                "changed_at": instant(when[cp.index]),
                "median_before_s": rounded(cp.median_before),
                "median_after_s": rounded(cp.median_after),
                "ratio": rounded(cp.ratio, 2),
                "runs_before": cp.index,
                "runs_after": len(durations) - cp.index,
                "consistency": rounded(cp.consistency, 2),
                "tasks_grew_s": grew,
            }
            since = f"since {instant(when[cp.index])}"
            if version_change:
                evidence["dag_version_before"] = before_v
                evidence["dag_version_after"] = after_v
                if after_v is not None and after_v in numbers:
                    since = f"since DAG version {numbers[after_v]} ({instant(when[cp.index])})"
            top = next(iter(grew), None)
            yield _finding(
                self,
                ctx,
                Severity.warning,
                stats.dag_id,
                title=f"DAG {stats.dag_id} got {cp.ratio:.1f}x slower {since}: "
                f"{seconds_text(cp.median_before)} -> {seconds_text(cp.median_after)}",
                detail=f"{len(durations) - cp.index} runs after the change, "
                f"{cp.consistency:.0%} of them slower than the median before it.",
                evidence=evidence,
                recommendation=(
                    f"Look at what changed then in {top} "
                    f"(+{seconds_text(grew[top])} at the median)."
                    if top
                    else "Look at what changed then: code, data volume, the workers."
                ),
            )


def _tasks_that_grew(stats: DagStats, when: list[float], split: int) -> dict[str, float]:
    """Tasks whose median span grew across the split, most first (at most five)."""
    boundary = when[split]
    out: dict[str, float] = {}
    for task_id, ts in stats.tasks.items():
        before: list[float] = []
        after: list[float] = []
        for i, span in zip(ts.success_index, ts.span.values, strict=True):
            (after if stats.success_when[i] >= boundary else before).append(span)
        if len(before) >= 2 and len(after) >= 2:
            delta = (median(after) or 0.0) - (median(before) or 0.0)
            if delta > 0:
                out[task_id] = round(delta, 3)
    return dict(sorted(out.items(), key=lambda kv: -kv[1])[:5])


class SlowTask:
    id = "slow_task"
    category = "pipelines"
    kind = KIND
    summary = (
        "A task's p95 span is at least `slow_task_s` and its median share of the run at least "
        "`slow_task_min_share`."
    )

    def run(self, ctx: DagsContext) -> Results:
        th = ctx.thresholds
        for stats in ctx.dags():
            ok_runs = len(stats.success_duration)
            for task_id in sorted(stats.tasks):
                ts = stats.tasks[task_id]
                if ts.span.count < th.min_runs:
                    continue
                p95 = ts.span.quantile(0.95) or 0.0
                share = ts.share.quantile(0.5) or 0.0
                if p95 < th.slow_task_s or share < th.slow_task_min_share:
                    continue
                critical = ts.critical_runs / ok_runs if ok_runs else 0.0
                advice = "Split it into parallel parts or make it faster."
                sim = ctx.faster_task(stats, task_id) if critical > 0 else None
                if sim is not None and sim.expected is not None and sim.baseline is not None:
                    advice += (
                        f" At half its time the DAG would take {seconds_text(sim.expected)} "
                        f"instead of {seconds_text(sim.baseline)} "
                        f"(`{_simulate_hint(stats.dag_id, f'--task {task_id}=50%')}`)."
                    )
                elif critical == 0:
                    advice += " It is never on the critical path: only its slot time is at stake."
                yield _finding(
                    self,
                    ctx,
                    Severity.warning,
                    f"{stats.dag_id}.{task_id}",
                    title=f"Task {task_id} of {stats.dag_id} takes {seconds_text(p95)} at p95, "
                    f"{share:.0%} of the run",
                    evidence={
                        "runs": ts.span.count,
                        "p50_s": rounded(ts.span.quantile(0.5)),
                        "p95_s": rounded(p95),
                        "max_s": rounded(max(ts.span.values)),
                        "share_p50": rounded(share),
                        "critical_share": rounded(critical),
                        "pool": ts.pool,
                    },
                    recommendation=advice,
                )


class CriticalPathCheck:
    id = "critical_path"
    category = "pipelines"
    kind = KIND
    summary = (
        "Every DAG with a successful run: the most frequent critical path (longest path by "
        "the tasks' actual spans), how often each task is on it, and each task's slack."
    )

    @staticmethod
    def _path(stats: DagStats) -> tuple[tuple[str, ...], int, dict[str, float]]:
        """The most frequent critical path, its runs, and each of its tasks' median span."""
        path, count = max(stats.paths.items(), key=lambda kv: (kv[1], len(kv[0])))
        spans = {t: stats.tasks[t].span.quantile(0.5) or 0.0 for t in path if t in stats.tasks}
        return path, count, spans

    @staticmethod
    def _replays(path: tuple[str, ...], spans: dict[str, float]) -> tuple[str, list[WhatIf]]:
        """The heaviest task of the path, and what the advice replays: that task at half
        its time, then each of the path's dependencies into and out of it dropped."""
        heaviest = max(spans, key=lambda t: spans[t])
        at = path.index(heaviest)
        edges = [path[i : i + 2] for i in (at - 1, at) if 0 <= i < len(path) - 1]
        drops = [WhatIf(dropped=frozenset({(a, b)})) for a, b in edges]
        return heaviest, [faster(heaviest), *drops]

    def what_ifs(self, stats: DagStats) -> list[WhatIf]:
        if not stats.paths:
            return []
        path, _, spans = self._path(stats)
        return self._replays(path, spans)[1] if spans else []

    def run(self, ctx: DagsContext) -> Results:
        for stats in ctx.dags():
            if not stats.paths:
                continue
            ok_runs = sum(stats.paths.values())
            path, count, spans = self._path(stats)
            length = stats.critical_length.quantile(0.5) or 0.0
            wall = stats.wall.quantile(0.5) or 0.0
            critical_share = {
                t: round(ts.critical_runs / ok_runs, 3)
                for t, ts in sorted(stats.tasks.items())
                if ts.critical_runs
            }
            slack = {
                t: rounded(ts.slack.quantile(0.5))
                for t, ts in sorted(stats.tasks.items())
                if ts.slack.count
            }
            evidence: dict[str, Any] = {
                "tasks": list(path),
                "runs": ok_runs,
                "path_runs": count,
                "path_share": rounded(count / ok_runs),
                "length_s": rounded(length),
                "wall_s": rounded(wall),
                "task_s": {t: rounded(s) for t, s in spans.items()},
                "critical_share": critical_share,
                "slack_s": slack,
            }
            advice = self._advice(ctx, stats, path, spans, evidence)
            shown = (
                " > ".join(path) if len(path) <= 6 else " > ".join([*path[:3], "...", *path[-2:]])
            )
            yield _finding(
                self,
                ctx,
                Severity.info,
                stats.dag_id,
                title=f"Critical path of {stats.dag_id}: {shown} ({seconds_text(length)}, "
                f"in {count} of {ok_runs} runs)",
                detail=f"These tasks decide when the DAG ends: a task off the path can grow by "
                f"its slack without delaying the run. The median run took {seconds_text(wall)}.",
                evidence=evidence,
                recommendation=advice,
            )

    def _advice(
        self,
        ctx: DagsContext,
        stats: DagStats,
        path: tuple[str, ...],
        spans: dict[str, float],
        evidence: dict[str, Any],
    ) -> str:
        if not spans:
            return ""
        heaviest, (half, *drops) = self._replays(path, spans)
        parts: list[str] = []
        sim = ctx.what_if(stats, half)
        if sim is not None and sim.expected is not None and sim.baseline is not None:
            hint = _simulate_hint(stats.dag_id, f"--task {heaviest}=50%")
            parts.append(
                f"Split {heaviest} or make it faster ({seconds_text(spans[heaviest])} of the "
                f"path): at half its time the DAG would take {seconds_text(sim.expected)} "
                f"instead of {seconds_text(sim.baseline)} (`{hint}`)."
            )
            evidence["heaviest_task"] = heaviest
            evidence["expected_s_at_half"] = rounded(sim.expected)
        # the dependencies into and out of the heaviest task are the ones worth dropping
        best: tuple[float, tuple[str, str], float] | None = None
        for drop in drops:
            dropped = ctx.what_if(stats, drop)
            if dropped is None or dropped.expected is None or dropped.baseline is None:
                continue
            gain = dropped.baseline - dropped.expected
            (edge,) = drop.dropped
            if gain > 0.05 * dropped.baseline and (best is None or gain > best[0]):
                best = (gain, edge, dropped.expected)
        late = _held_back(stats, path, evidence.get("length_s") or 0.0)
        if late is not None:
            task_id, waited = late
            parts.append(
                f"{task_id} waited {seconds_text(waited)} at the median after it was ready, "
                "while tasks off the critical path held the slots: a higher priority_weight "
                "(Airflow starts the ready task of highest weight first) moves it earlier."
            )
            evidence["held_back_task"] = task_id
            evidence["held_back_s"] = rounded(waited)
        if best is not None:
            (a, b), expected = best[1], best[2]
            hint = _simulate_hint(stats.dag_id, f"--drop-edge {a}>{b}")
            parts.append(
                f"If {b} does not use what {a} produces, dropping that dependency would make it "
                f"{seconds_text(expected)} (`{hint}`)."
            )
            evidence["drop_edge"] = [a, b]
            evidence["expected_s_without_edge"] = rounded(expected)
        return " ".join(parts)


def _held_back(stats: DagStats, path: tuple[str, ...], length: float) -> tuple[str, float] | None:
    """The task of the critical path that, in most recent runs, waited after it was ready
    while tasks off the path ran: the one a priority would move earlier, with its median
    wait (at least a tenth of the path)."""
    recent = stats.latest(ADVICE_RUNS, success=True)
    best: tuple[str, float] | None = None
    # each run's tries off its critical path that have a start and an end: what may have
    # held a slot while a task of the path waited
    others = []
    for facts in recent:
        off = set(facts.tasks) - set(facts.critical.path)
        others.append(
            [
                (t.start, t.end)
                for t in facts.run.tries
                if t.task_id in off and t.start is not None and t.end is not None
            ]
        )
    for task_id in path:
        waits = []
        for facts, spans in zip(recent, others, strict=True):
            task = facts.tasks.get(task_id)
            if task is None or task.ready is None or task.start is None:
                continue
            if task.start - task.ready <= 0:
                continue
            ready, start = task.ready, task.start
            if any(s < start and e > ready for s, e in spans):
                waits.append(start - ready)
        if recent and 2 * len(waits) > len(recent):
            waited = median(waits) or 0.0
            if best is None or waited > best[1]:
                best = (task_id, waited)
    if best is None or best[1] < 0.1 * length:
        return None
    return best


class LowParallelism:
    id = "low_parallelism"
    category = "pipelines"
    kind = KIND
    summary = (
        "Replaying a DAG's recent runs with unlimited slots would make them at least "
        "`low_parallelism_speedup` times faster: tasks that could run side by side waited for "
        "a slot. A pure chain never triggers it."
    )

    def run(self, ctx: DagsContext) -> Results:
        th = ctx.thresholds
        for stats in ctx.dags():
            par = ctx.parallelism(stats)
            if par is None or par.speedup < th.low_parallelism_speedup:
                continue
            if par.task_time < par.critical_path * 1.05 or par.unlimited <= 0:
                continue  # nothing can run side by side
            limit = stats.dag.max_active_tasks if stats.dag is not None else None
            pools = _pools_of(stats)
            pool_name, pool_slots = _limiting_pool(ctx, pools, par.slots_used)
            if limit is not None and par.slots_used >= limit:
                what = (
                    f"Raise max_active_tasks of {stats.dag_id} from {limit} to {par.enough_slots}"
                )
            elif pool_name is not None:
                what = (
                    f"Raise the slots of pool {pool_name} from {pool_slots} to {par.enough_slots}"
                )
            else:
                what = (
                    f"Give it {par.enough_slots} slots: raise [core] parallelism or the "
                    "executor's worker slots (it never had more than "
                    f"{par.slots_used} task(s) running)"
                )
            saved = max(0.0, par.replayed - par.with_enough)
            yield _finding(
                self,
                ctx,
                Severity.warning,
                stats.dag_id,
                title=f"DAG {stats.dag_id} runs {par.speedup:.1f}x slower than its dependencies "
                f"allow: {par.slots_used} slot(s) used, {par.enough_slots} would do",
                detail=(
                    f"The median run took {seconds_text(par.wall)}; its critical path is "
                    f"{seconds_text(par.critical_path)} and its tasks add up to "
                    f"{seconds_text(par.task_time)}. Replayed on {par.slots_used} slot(s) it "
                    f"takes {seconds_text(par.replayed)}, on {par.enough_slots} "
                    f"{seconds_text(par.with_enough)}."
                ),
                evidence={
                    "runs": par.runs,
                    "wall_s": rounded(par.wall),
                    "critical_path_s": rounded(par.critical_path),
                    "task_time_s": rounded(par.task_time),
                    "slots_used": par.slots_used,
                    "max_active_tasks": limit,
                    "pool": pool_name,
                    "pool_slots": pool_slots,
                    "replayed_s": rounded(par.replayed),
                    "unlimited_s": rounded(par.unlimited),
                    "enough_slots": par.enough_slots,
                    "expected_s": rounded(par.with_enough),
                    "speedup": rounded(par.speedup, 2),
                    "time_saved_ms": round(saved * 1000, 1),
                },
                recommendation=f"{what}: expected {seconds_text(par.with_enough)} instead of "
                f"{seconds_text(par.replayed)} per run "
                f"(`{_simulate_hint(stats.dag_id, f'--slots {par.enough_slots}')}`).",
            )


def _pools_of(stats: DagStats) -> dict[str, int]:
    out: dict[str, int] = {}
    for ts in stats.tasks.values():
        if ts.pool:
            out[ts.pool] = out.get(ts.pool, 0) + ts.runs
    return out


def _limiting_pool(
    ctx: DagsContext, pools: dict[str, int], used: int
) -> tuple[str | None, int | None]:
    """The pool most of the DAG's tasks run in, when it has no more slots than were used."""
    if not pools:
        return None, None
    name = max(pools, key=lambda p: pools[p])
    known = ctx.analysis.pools.get(name)
    if known is not None and known.slots is not None and known.slots <= used:
        return name, known.slots
    return None, None


class QueueWait:
    id = "queue_wait"
    category = "pipelines"
    kind = KIND
    summary = (
        "Along a DAG's critical path, tasks wait (ready -> queued -> running) at least "
        "`queue_wait_s` per run at the median, and at least `queue_wait_share` of the run."
    )

    def run(self, ctx: DagsContext) -> Results:
        th = ctx.thresholds
        for stats in ctx.dags():
            waited = stats.critical_wait.quantile(0.5)
            wall = stats.wall.quantile(0.5)
            if waited is None or not wall or stats.critical_wait.count < th.min_runs:
                continue
            if waited < th.queue_wait_s or waited < th.queue_wait_share * wall:
                continue
            per_task: dict[str, dict[str, float | None]] = {}
            pools: dict[str, list[float]] = {}
            for task_id, ts in sorted(stats.tasks.items()):
                if not ts.wait.count:
                    continue
                per_task[task_id] = {
                    "to_queue_p50_s": rounded(ts.to_queue.quantile(0.5)),
                    "in_queue_p50_s": rounded(ts.in_queue.quantile(0.5)),
                    "wait_p95_s": rounded(ts.wait.quantile(0.95)),
                }
                totals = pools.setdefault(ts.pool or "default_pool", [0.0, 0.0, 0.0])
                totals[0] += ts.to_queue.total
                totals[1] += ts.in_queue.total
                totals[2] += max(ts.to_queue.count, ts.in_queue.count)
            top = dict(sorted(per_task.items(), key=lambda kv: -(kv[1]["wait_p95_s"] or 0.0))[:10])
            per_pool = {
                p: {"to_queue_mean_s": rounded(a / n), "in_queue_mean_s": rounded(b / n)}
                for p, (a, b, n) in sorted(pools.items())
                if n
            }
            to_queue = sum(a for a, _, _ in pools.values())
            in_queue = sum(b for _, b, _ in pools.values())
            if in_queue > to_queue:
                advice = (
                    "Tasks sit queued before a worker picks them up: the executor is short of "
                    "workers (raise [core] parallelism, the worker concurrency, or add workers)."
                )
            else:
                advice = (
                    "Tasks wait to be queued: a pool or max_active_tasks is full (see "
                    "pool_saturation and low_parallelism), or the scheduler loop is slow "
                    "(scheduler_heartbeat_sec, more schedulers)."
                )
            yield _finding(
                self,
                ctx,
                Severity.warning,
                stats.dag_id,
                title=f"DAG {stats.dag_id} waits {seconds_text(waited)} per run along its "
                f"critical path ({waited / wall:.0%} of the run)",
                detail="Waiting is the time from when a task's upstream tasks had ended (or "
                "Airflow 3's scheduled time) to when it was queued, and from queued to running.",
                evidence={
                    "runs": stats.critical_wait.count,
                    "critical_wait_p50_s": rounded(waited),
                    "wall_p50_s": rounded(wall),
                    "per_task": top,
                    "per_pool": per_pool,
                    "time_saved_ms": round(waited * 1000, 1),
                },
                recommendation=advice,
            )


class PoolSaturation:
    id = "pool_saturation"
    category = "pipelines"
    kind = KIND
    summary = (
        "Tasks waited at least `pool_saturation_wait_s` in all, while every slot of their "
        "pool was taken."
    )

    def run(self, ctx: DagsContext) -> Results:
        th = ctx.thresholds
        for name in sorted(ctx.analysis.pools):
            pool = ctx.analysis.pools[name]
            if not sweeps(pool):
                continue
            full, waited, peak_demand = ctx.saturation(name)
            if waited < th.pool_saturation_wait_s or waited <= 0:
                continue
            dags = [d for d, _ in pool.dags.most_common(5)]
            yield _finding(
                self,
                ctx,
                Severity.warning,
                f"pool:{name}",
                title=f"Pool {name} was full for {seconds_text(full)}; tasks waited "
                f"{seconds_text(waited)} for its {pool.slots} slot(s)",
                detail=f"At the peak, {peak_demand} slot(s) were wanted at once (running plus "
                "waiting).",
                evidence={
                    "slots": pool.slots,
                    "full_s": rounded(full),
                    "waited_while_full_s": rounded(waited),
                    "peak_demand": peak_demand,
                    "tries": len(pool.start),
                    "dags": dags,
                    "time_saved_ms": round(waited * 1000, 1),
                },
                recommendation=f"Raise the slots of pool {name} to {peak_demand} "
                f"(`airflow pools set {name} {peak_demand} ...`), or spread the schedules of "
                f"{', '.join(dags[:3])} so they do not meet.",
            )


class TaskRetriesCost:
    id = "task_retries_cost"
    category = "pipelines"
    kind = KIND
    summary = (
        "A task's retries (failed tries and retry delays) cost at least `retries_cost_s` of "
        "wall time over the runs read."
    )

    def run(self, ctx: DagsContext) -> Results:
        th = ctx.thresholds
        for stats in ctx.dags():
            for task_id in sorted(stats.tasks):
                ts = stats.tasks[task_id]
                if not ts.retries or ts.retry_cost < th.retries_cost_s:
                    continue
                rate = ts.retried_runs / ts.runs if ts.runs else 0.0
                yield _finding(
                    self,
                    ctx,
                    Severity.warning,
                    f"{stats.dag_id}.{task_id}",
                    title=f"Task {task_id} of {stats.dag_id} was retried in {ts.retried_runs} "
                    f"of {ts.runs} runs: {seconds_text(ts.retry_cost)} lost",
                    detail="The time lost is, for each retried instance, from its first try's "
                    "start to its last try's start: the failed tries and the retry delays.",
                    evidence={
                        "runs": ts.runs,
                        "retried_runs": ts.retried_runs,
                        "retries": ts.retries,
                        "retry_rate": rounded(rate),
                        "time_lost_s": rounded(ts.retry_cost),
                        "time_saved_ms": round(ts.retry_cost * 1000, 1),
                    },
                    recommendation=f"Fix the flaky task: find why its first tries of {task_id} "
                    "fail (its logs; a timeout, an external service, a race with another DAG) "
                    "rather than retrying it.",
                )


class DagFailures:
    id = "dag_failures"
    category = "pipelines"
    kind = KIND
    summary = (
        "At least `failure_rate` of a DAG's finished runs failed (critical from "
        "`failure_rate_critical`); names the tasks that failed."
    )

    def run(self, ctx: DagsContext) -> Results:
        th = ctx.thresholds
        for stats in ctx.dags():
            finished = stats.finished
            failed = stats.states.get("failed", 0)
            if not finished or not failed:
                continue
            rate = failed / finished
            if rate < th.failure_rate:
                continue
            severity = Severity.critical if rate >= th.failure_rate_critical else Severity.warning
            failing = dict(stats.failing_tasks.most_common(10))
            named = ", ".join(f"{t} ({n})" for t, n in failing.items()) or "no task recorded"
            top = next(iter(failing), None)
            yield _finding(
                self,
                ctx,
                severity,
                stats.dag_id,
                title=f"DAG {stats.dag_id} failed {failed} of {finished} runs ({rate:.0%}); "
                f"failing: {named}",
                evidence={
                    "finished_runs": finished,
                    "failed_runs": failed,
                    "failure_rate": rounded(rate),
                    "failing_tasks": failing,
                    "last_failure": instant(stats.last_failure),
                },
                recommendation=(
                    f"Fix {top}: it failed in {failing[top]} run(s); its logs say why."
                    if top
                    else "Look at the failed runs' logs."
                ),
            )


CHECKS = (
    SlowDag(),
    DagDurationRegression(),
    SlowTask(),
    CriticalPathCheck(),
    LowParallelism(),
    QueueWait(),
    PoolSaturation(),
    TaskRetriesCost(),
    DagFailures(),
)

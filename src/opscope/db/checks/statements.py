"""slow_query: statements over the mean-time threshold, and the top ones by total time."""

from __future__ import annotations

from collections.abc import Iterable

from opscope.db.checks.base import DbCheck
from opscope.db.context import DbContext
from opscope.db.statements import Statement, is_maintenance, share_of_total
from opscope.findings import Finding, Severity
from opscope.sqltext import short_query


def statement_evidence(s: Statement, share: float | None) -> dict[str, object]:
    return {
        "queryid": s.queryid,
        "query": s.query,
        "user": s.username,
        "calls": s.calls,
        "total_ms": round(s.total_exec_time, 3),
        "mean_ms": round(s.mean_exec_time, 3),
        "max_ms": round(s.max_exec_time, 3),
        "stddev_ms": round(s.stddev_exec_time, 3),
        "rows": s.rows,
        "rows_per_call": round(s.rows / s.calls, 2) if s.calls else 0,
        "shared_blks_hit": s.shared_blks_hit,
        "shared_blks_read": s.shared_blks_read,
        "cache_hit_ratio": None if s.cache_hit_ratio is None else round(s.cache_hit_ratio, 4),
        "temp_blks_read": s.temp_blks_read,
        "temp_blks_written": s.temp_blks_written,
        # None for nested statements: their time is inside a top-level statement's
        "share_of_total_time": None if share is None else round(share, 4),
        "nested": not s.toplevel,
        "wal_bytes": s.wal_bytes,
        # 0 unless track_io_timing is on
        "read_ms": round(s.read_time_ms, 3),
        "write_ms": round(s.write_time_ms, 3),
        # pg_stat_statements 1.11+: since when this entry counts
        "counting_since": None if s.since is None else s.since.isoformat(),
        # 1.12+: workers its plans asked for, and those the server could start
        "parallel_workers_planned": s.parallel_workers_planned,
        "parallel_workers_launched": s.parallel_workers_launched,
    }


def parallel_shortfall(s: Statement) -> str:
    """A sentence when the server started fewer parallel workers than the plans asked for."""
    planned, launched = s.parallel_workers_planned, s.parallel_workers_launched
    if not planned or launched is None or launched >= planned:
        return ""
    return (
        f" The server started {launched} of the {planned} parallel workers its plans asked "
        "for: max_parallel_workers (or max_worker_processes) is used up when it runs; raise "
        "it, or spread the load."
    )


def _share_text(share: float | None) -> str:
    return "nested in another statement" if share is None else f"{share:.1%} of database time"


class SlowQuery(DbCheck):
    id = "slow_query"
    category = "queries"
    summary = (
        "A statement's mean execution time exceeds thresholds.slow_query_ms (default 1000 ms), "
        "or it is among the thresholds.top_statements statements by total time."
    )

    def run(self, context: DbContext) -> Iterable[Finding]:
        snap = context.statements
        t = context.thresholds
        statements = [
            s for s in snap.statements if s.calls >= t.min_calls and not is_maintenance(s.query)
        ]
        shares = share_of_total(statements)
        window = (
            f" during the {snap.window_s:.0f} s window"
            if snap.window_s
            else " since the last reset"
        )
        reported: set[tuple[int, int, bool]] = set()
        for s in sorted(statements, key=lambda s: -s.mean_exec_time):
            if s.mean_exec_time < t.slow_query_ms:
                break
            reported.add(s.key)
            severity = (
                Severity.critical if s.mean_exec_time >= 10 * t.slow_query_ms else Severity.warning
            )
            share = shares[s.key]
            yield self._finding(
                context,
                s,
                share,
                severity,
                f"Slow {'nested ' if share is None else ''}statement: "
                f"{s.mean_exec_time / 1000:.2f} s on average over {s.calls} "
                f"call{'' if s.calls == 1 else 's'}: {short_query(s.query, 60)}",
                f"Its mean execution time{window} is over the {t.slow_query_ms:.0f} ms threshold"
                + (
                    "; it runs nested in another statement (a function or procedure), whose "
                    "time includes its own."
                    if share is None
                    else f" and it takes {share:.1%} of the database's execution time."
                ),
            )
        # ranked among top-level statements only: a nested one's time is inside its caller's
        top = sorted((s for s in statements if s.toplevel), key=lambda s: -s.total_exec_time)[
            : t.top_statements
        ]
        for rank, s in enumerate(top, start=1):
            share = shares[s.key]
            if s.key in reported or share is None or share < t.top_statements_min_share:
                continue
            yield self._finding(
                context,
                s,
                share,
                Severity.info,
                f"Top statement #{rank} by total time ({_share_text(share)}): "
                f"{short_query(s.query, 60)}",
                f"It ran {s.calls} time{'' if s.calls == 1 else 's'}{window}, "
                f"{s.mean_exec_time:.2f} ms on average; small gains on it pay off across the "
                "whole workload.",
                rank=rank,
            )

    def _finding(
        self,
        context: DbContext,
        s: Statement,
        share: float | None,
        severity: Severity,
        title: str,
        detail: str,
        rank: int | None = None,
    ) -> Finding:
        evidence = statement_evidence(s, share)
        if rank is not None:
            evidence["rank_by_total_time"] = rank
        if context.statements.window_s:
            evidence["window_s"] = round(context.statements.window_s, 1)
        if context.statements.window_incomplete:
            # entries were evicted during the window: some statements may be missing
            evidence["window_incomplete"] = True
        temp = (
            " It spills to temporary files: raise work_mem for it." if s.temp_blks_written else ""
        ) + parallel_shortfall(s)
        return self.finding(
            context,
            severity=severity,
            object=f"query:{s.queryid}",
            key=(s.userid, s.toplevel),
            title=title,
            detail=detail,
            evidence=evidence,
            recommendation=(
                "Look at its plan with EXPLAIN (ANALYZE, BUFFERS) for sequential scans of large "
                "tables, misestimates and sorts; index the filtered columns or rewrite it." + temp
            ),
        )


CHECKS = [SlowQuery()]

"""`autovacuum_slow` and `checkpoints_too_frequent`: findings from the autovacuum and
checkpoint entries of a log (maintenance.py), each with the setting to change and why,
from the numbers the entries give."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import ClassVar

from opscope.db.logs.findings import MAX_FINDINGS_PER_CHECK, LogContext, _LogCheck, _make
from opscope.db.logs.maintenance import OTHER_TABLE, CheckpointStats, TableMaintenance
from opscope.db.logs.options import LogOptions
from opscope.findings import Finding, Severity
from opscope.sqltext import qualified, quote_ident

#: a WAL-started checkpoint or two is a bulk load; fewer never make a finding
MIN_WAL_CHECKPOINTS = 2
#: a vacuum that spent at least this share of its time not on the CPU was waiting: on the
#: cost-based delay or on I/O
WAITING_SHARE = 0.5
#: what the cost-based delay is raised to for a table that vacuums too slowly: ten times
#: the default vacuum_cost_limit (200), at the default autovacuum_vacuum_cost_delay (2 ms)
COST_LIMIT = 2000
COST_DELAY_MS = 2
#: what autovacuum_work_mem is raised to when the dead tuples did not fit in one pass
#: (PostgreSQL 16 and older use at most 1GB of it)
WORK_MEM = "1GB"


class AutovacuumSlow(_LogCheck):
    id = "autovacuum_slow"
    category = "tables"
    summary = (
        "A table whose autovacuum run in the log took at least postgresql.logs."
        "autovacuum_slow_s (default 60 s), with the setting that makes it faster: the "
        "cost-based delay, autovacuum_work_mem, or a lower scale factor."
    )

    def run(self, context: LogContext) -> Iterable[Finding]:
        return _autovacuum_slow(context)


class CheckpointsTooFrequent(_LogCheck):
    id = "checkpoints_too_frequent"
    category = "settings"
    summary: ClassVar[str] = (
        "Checkpoints started because WAL filled max_wal_size (more than postgresql.logs."
        "checkpoint_wal_share of them), or automatic checkpoints less than "
        "checkpoint_min_interval_s apart; the fix sizes max_wal_size from the WAL rate seen."
    )

    def run(self, context: LogContext) -> Iterable[Finding]:
        return _checkpoints_too_frequent(context)


CHECKS = [AutovacuumSlow(), CheckpointsTooFrequent()]


def _quoted(table: str) -> str:
    """`schema.table` as the log names it, as SQL (the log does not quote: a schema
    with a dot in its name is read up to its first dot)."""
    schema, dot, name = table.partition(".")
    return qualified(schema, name) if dot else quote_ident(table)


def _autovacuum_slow(context: LogContext) -> Iterator[Finding]:
    options = context.options
    maintenance = context.aggregate.maintenance
    slow = [
        t
        for t in maintenance.tables.values()
        if t.table != OTHER_TABLE and t.vacuums and t.vacuum_max_s >= options.autovacuum_slow_s
    ]
    slow.sort(key=lambda t: (-t.vacuum_max_s, t.database, t.table))
    for table in slow[:MAX_FINDINGS_PER_CHECK]:
        yield _slow_table(table, context.target, options)


def _slow_table(table: TableMaintenance, target: str, options: LogOptions) -> Finding:
    run = table.slowest
    assert run is not None  # a table with a vacuum has its slowest run
    elapsed = run.elapsed_s or 0.0
    reasons: list[str] = []
    statements: list[str] = []
    name = _quoted(table.table)
    waiting = max(0.0, 1.0 - run.cpu_s / elapsed) if run.cpu_s is not None and elapsed > 0 else None
    delayed = run.delay_ms / 1000 / elapsed if run.delay_ms is not None and elapsed > 0 else None
    if run.index_scans is not None and run.index_scans > 1:
        reasons.append(
            f"its dead tuples did not fit in autovacuum_work_mem: every index was scanned "
            f"{run.index_scans} times in one run, once per fill"
        )
        statements.append(f"ALTER SYSTEM SET autovacuum_work_mem = '{WORK_MEM}';")
    throttled = (delayed is not None and delayed >= WAITING_SHARE) or (
        delayed is None and waiting is not None and waiting >= WAITING_SHARE
    )
    if throttled:
        if delayed is not None:
            why = f"it slept {delayed:.0%} of its {elapsed:g} s in the cost-based delay"
        else:
            assert waiting is not None
            rates = (
                f" (read {run.read_mb_s:g} MB/s, wrote {run.write_mb_s:g} MB/s)"
                if run.read_mb_s is not None and run.write_mb_s is not None
                else ""
            )
            why = (
                f"it used the CPU for {run.cpu_s:g} s of its {elapsed:g} s: {waiting:.0%} of "
                f"the run was waiting, on the cost-based delay or on I/O{rates}"
            )
        reasons.append(why)
        statements.append(
            f"ALTER TABLE {name} SET (autovacuum_vacuum_cost_limit = {COST_LIMIT}, "
            f"autovacuum_vacuum_cost_delay = {COST_DELAY_MS});"
        )
    if not statements:
        # Working all the time, on a lot at once: smaller, more frequent runs.
        live = run.tuples_remain or 0
        removed = run.tuples_removed or 0
        share = removed / (live + removed) if live + removed else 0.0
        factor = round(max(0.005, min(0.05, share / 4)), 3)
        reasons.append(
            f"it was busy all along (CPU {run.cpu_s or 0:g} s of {elapsed:g} s) removing "
            f"{removed:,} dead tuples, {share:.0%} of the table: autovacuum waits for "
            "autovacuum_vacuum_scale_factor of the table to be dead before it starts"
        )
        statements.append(f"ALTER TABLE {name} SET (autovacuum_vacuum_scale_factor = {factor:g});")
    if any(s.startswith("ALTER SYSTEM") for s in statements):
        statements.append("SELECT pg_reload_conf();")
    if run.wraparound:
        reasons.append(
            "the run was an anti-wraparound vacuum, which reads every page not yet frozen"
        )
    where = f"{table.database}.{table.table}" if table.database else table.table
    return _make(
        check="autovacuum_slow",
        category="tables",
        severity=Severity.warning,
        target=target,
        object=table.table,
        key=(table.database,),
        title=f"autovacuum of {where} takes up to {elapsed:g} s "
        f"({table.vacuums} run(s), {table.tuples_removed:,} dead tuples removed)",
        detail=f"The longest run, at {run.ts}, took {elapsed:g} s: "
        + "; ".join(reasons)
        + ". While a vacuum of a table is slow its dead tuples stay, the table and its "
        "indexes bloat, and a worker is taken from the other tables "
        "(autovacuum_max_workers).",
        evidence={
            "database": table.database or None,
            "vacuums": table.vacuums,
            "vacuum_total_s": round(table.vacuum_s, 3),
            "vacuum_max_s": round(table.vacuum_max_s, 3),
            "analyzes": table.analyzes,
            "analyze_max_s": round(table.analyze_max_s, 3),
            "tuples_removed": table.tuples_removed,
            "pages_removed": table.pages_removed,
            "waiting_share": round(waiting, 3) if waiting is not None else None,
            "delay_share": round(delayed, 3) if delayed is not None else None,
            "threshold_s": options.autovacuum_slow_s,
            "slowest": run.to_json(),
        },
        recommendation=_vacuum_advice(statements),
        fix_sql="\n".join(statements),
    )


def _vacuum_advice(statements: list[str]) -> str:
    parts = []
    if any("cost_limit" in s for s in statements):
        parts.append(
            f"let autovacuum do more work between its pauses on this table (cost limit "
            f"{COST_LIMIT}, delay {COST_DELAY_MS} ms: about ten times the default rate)"
        )
    if any("autovacuum_work_mem" in s for s in statements):
        parts.append(
            f"give autovacuum {WORK_MEM} for dead tuples (autovacuum_work_mem, or "
            "maintenance_work_mem when it is -1) so each run scans the indexes once"
        )
    if any("scale_factor" in s for s in statements):
        parts.append("vacuum this table after fewer dead rows, so each run has less to do")
    return "; ".join(parts).capitalize() + "."


def _setting_mb(mb: float) -> str:
    """A size for max_wal_size, rounded up: to 256MB below 4GB, to whole GB above."""
    if mb <= 4096:
        return f"{max(256, math.ceil(mb / 256) * 256)}MB"
    return f"{math.ceil(mb / 1024)}GB"


def _apart(interval_s: float | None) -> str:
    """An interval counted in whole seconds, as said: 0 is under a second."""
    if interval_s is None:
        return "an unknown time"
    return "under a second" if interval_s < 1 else f"{interval_s:g} s"


def _checkpoints_too_frequent(context: LogContext) -> Iterator[Finding]:
    options = context.options
    maintenance = context.aggregate.maintenance
    maintenance.fold()
    stats = maintenance.checkpoints
    wal = stats.by_trigger.get("wal", 0)
    timed = stats.by_trigger.get("time", 0)
    automatic = wal + timed
    median = stats.interval_quantile(0.5)
    by_wal = wal >= MIN_WAL_CHECKPOINTS and wal / automatic > options.checkpoint_wal_share
    by_interval = (
        stats.interval_count >= 2
        and median is not None
        and median < options.checkpoint_min_interval_s
    )
    if not by_wal and not by_interval:
        return
    yield _frequent(stats, context, median)


def _frequent(stats: CheckpointStats, context: LogContext, median: float | None) -> Finding:
    options = context.options
    aggregate = context.aggregate
    wal = stats.by_trigger.get("wal", 0)
    timed = stats.by_trigger.get("time", 0)
    timeout = options.checkpoint_timeout_s
    spread = 1.0 + options.checkpoint_completion_target
    summary = aggregate.maintenance.summary(aggregate.first_ts, aggregate.last_ts)
    per_hour = summary["checkpoints"]["per_hour"]
    rate = stats.wal_rate_kb_s()
    if rate is None and median and stats.completed:
        rate = stats.distance_kb / stats.completed / max(median, 1.0)
    evidence: dict[str, object] = {
        "started": stats.started,
        "by_trigger": summary["checkpoints"]["by_trigger"],
        "per_hour": per_hour,
        "interval_p50_s": median,
        "wal_kb_per_s": round(rate, 1) if rate is not None else None,
        "wal_per_timeout_kb": stats.wal_per_kb(timeout),
        "mean_distance_kb": summary["checkpoints"]["mean_distance_kb"],
        "too_frequent_warnings": stats.too_frequent,
        "checkpoint_timeout_s": timeout,
        "checkpoint_completion_target": options.checkpoint_completion_target,
    }
    seen = (
        f"{wal} of {wal + timed} automatic checkpoints were started because WAL filled max_wal_size"
        if wal
        else f"automatic checkpoints came every {_apart(median)} (median)"
    )
    if median is not None and wal:
        seen += f", {_apart(median)} apart on median"
    if stats.too_frequent:
        seen += (
            f"; the server itself warned {stats.too_frequent} time(s) that checkpoints are "
            f"occurring too frequently (down to {stats.too_frequent_min_s} s apart)"
        )
    expected = round(3600 / timeout, 1)
    if wal and rate is not None:
        # the WAL one checkpoint_timeout writes: at the rate of the forced checkpoints, but
        # no more than the log shows written in that much time (a burst ends)
        per_timeout_kb = rate * timeout
        most = stats.wal_per_kb(timeout)
        if most is not None:
            per_timeout_kb = min(per_timeout_kb, float(most))
        needed_mb = per_timeout_kb * spread / 1024
        value = _setting_mb(needed_mb)
        current = (
            stats.wal_distance_kb / stats.wal_intervals * spread / 1024
            if stats.wal_intervals
            else None
        )
        evidence.update(
            {
                "max_wal_size_now_mb": round(current) if current is not None else None,
                "max_wal_size": value,
                "expected_per_hour": expected,
            }
        )
        now = f" (about {round(current)}MB now, from the WAL between them)" if current else ""
        detail = (
            f"{seen}. WAL was written at {rate / 1024:.1f} MB/s while they did, and "
            f"{per_timeout_kb / 1024:,.0f} MB at most in {timeout:g} s (checkpoint_timeout); "
            f"a checkpoint starts once max_wal_size / (1 + "
            f"checkpoint_completion_target) of WAL is written, so max_wal_size needs "
            f"{needed_mb:,.0f} MB{now} for checkpoints to come by time. Each checkpoint "
            "writes every dirty buffer, and the first change of each page after it writes "
            "the whole page to WAL again (full_page_writes): frequent checkpoints multiply "
            "both."
        )
        return _make(
            check="checkpoints_too_frequent",
            category="settings",
            severity=Severity.warning,
            target=context.target,
            object="max_wal_size",
            title=f"{wal} checkpoint(s) forced by WAL volume"
            + (f", {per_hour:g} per hour" if per_hour else ""),
            detail=detail,
            evidence=evidence,
            recommendation=f"Raise max_wal_size to {value} (pg_wal can then grow to that "
            f"size: check the disk has room): checkpoints then come every checkpoint_timeout, "
            f"about {expected:g} an hour, instead of whenever WAL fills.",
            fix_sql=f"ALTER SYSTEM SET max_wal_size = '{value}';\nSELECT pg_reload_conf();",
        )
    if wal:
        # started by WAL, but no `complete:` line says how much: nothing to size it from
        return _make(
            check="checkpoints_too_frequent",
            category="settings",
            severity=Severity.warning,
            target=context.target,
            object="max_wal_size",
            title=f"{wal} checkpoint(s) forced by WAL volume",
            detail=f"{seen}; the log has no `checkpoint complete` lines that say how much WAL "
            "came between them.",
            evidence=evidence,
            recommendation="Raise max_wal_size (run opscope logs on a log with the checkpoints' "
            "`complete` lines to have it sized from the WAL rate).",
        )
    value_s = max(300, math.ceil(options.checkpoint_min_interval_s / 60) * 60)
    evidence.update({"checkpoint_timeout": f"{value_s // 60}min"})
    return _make(
        check="checkpoints_too_frequent",
        category="settings",
        severity=Severity.warning,
        target=context.target,
        object="checkpoint_timeout",
        title=f"checkpoints every {_apart(median)} (median)",
        detail=f"{seen}: checkpoint_timeout is set that low. Each checkpoint writes every "
        "dirty buffer, and the first change of each page after it writes the whole page to "
        "WAL again (full_page_writes).",
        evidence=evidence,
        recommendation=f"Raise checkpoint_timeout to {value_s // 60}min "
        f"({round(3600 / value_s, 1):g} checkpoints an hour); crash recovery then replays "
        "up to that much WAL.",
        fix_sql=f"ALTER SYSTEM SET checkpoint_timeout = '{value_s // 60}min';\n"
        "SELECT pg_reload_conf();",
    )

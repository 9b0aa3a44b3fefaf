"""Table statistics: stale planner statistics, bloat, size and growth, sequential-scan-heavy
tables, transaction-id wraparound risk and overdue vacuums."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from opscope.db.bloat import ColumnWidth, heap_estimate
from opscope.db.catalog import ColumnStat, Table
from opscope.db.checks.base import DbCheck
from opscope.db.context import DbContext
from opscope.db.relations import mentions
from opscope.findings import Finding, Severity
from opscope.sqltext import qualified, short_query
from opscope.units import human_bytes

XID_LIMIT = 2**31


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts else None


class StaleStatistics(DbCheck):
    id = "stale_statistics"
    category = "tables"
    summary = (
        "A table never analyzed, or whose rows modified since the last ANALYZE exceed "
        "thresholds.stale_statistics_ratio of its rows; tables under "
        "thresholds.stale_statistics_min_rows rows are ignored."
    )

    def run(self, context: DbContext) -> Iterable[Finding]:
        t = context.thresholds
        for table in context.catalog.tables:
            rows = max(table.rows, float(table.n_live_tup))
            analyzed = table.last_analyzed
            if table.partitioned:
                # autovacuum never analyzes a partitioned table: only its partitions, so
                # statistics across partitions exist only if someone runs ANALYZE on it
                if analyzed is not None:
                    continue
                rows = sum(
                    max(p.rows, float(p.n_live_tup))
                    for p in context.catalog.leaf_partitions(table.oid)
                )
                if rows < t.stale_statistics_min_rows:
                    continue
                yield self._partitioned(context, table, rows)
                continue
            if analyzed is None:
                if rows < t.stale_statistics_min_rows:
                    continue
                title = f"{table.qualified} has never been analyzed"
                detail = (
                    f"The planner has no statistics for its ~{rows:,.0f} rows and guesses "
                    "selectivities, which leads to bad join orders and scan choices."
                )
            else:
                modified = table.n_mod_since_analyze
                if modified < max(t.stale_statistics_min_rows, t.stale_statistics_ratio * rows):
                    continue
                title = (
                    f"Statistics of {table.qualified} are stale: {modified:,} rows changed since "
                    "the last analyze"
                )
                detail = (
                    f"{modified:,} modified rows against ~{rows:,.0f} rows since "
                    f"{analyzed:%Y-%m-%d %H:%M} UTC; estimates drift and plans with them."
                )
            autovac_off = table.autovacuum_disabled or not context.summary.autovacuum
            if autovac_off:
                detail += " Autovacuum is disabled for it, so nothing will analyze it."
            yield self.finding(
                context,
                severity=Severity.warning,
                object=table.qualified,
                title=title,
                detail=detail,
                evidence={
                    "schema": table.schema,
                    "table": table.name,
                    "rows": rows,
                    "n_mod_since_analyze": table.n_mod_since_analyze,
                    "last_analyze": _iso(table.last_analyze),
                    "last_autoanalyze": _iso(table.last_autoanalyze),
                    "autovacuum_enabled": not autovac_off,
                },
                recommendation="Analyze it now"
                + (
                    " and re-enable autovacuum for it."
                    if autovac_off
                    else "; if this recurs, lower autovacuum_analyze_scale_factor for it."
                ),
                fix_sql=f"ANALYZE {qualified(table.schema, table.name)};",
            )

    def _partitioned(self, context: DbContext, table: Table, rows: float) -> Finding:
        return self.finding(
            context,
            severity=Severity.warning,
            object=table.qualified,
            title=f"Partitioned table {table.qualified} has never been analyzed",
            detail=(
                f"Autovacuum analyzes its partitions but never the partitioned table itself, so "
                f"the planner has no statistics across its ~{rows:,.0f} rows for queries that "
                "span partitions or join it."
            ),
            evidence={
                "schema": table.schema,
                "table": table.name,
                "rows": rows,
                "partitioned": True,
                "last_analyze": _iso(table.last_analyze),
                "last_autoanalyze": _iso(table.last_autoanalyze),
            },
            recommendation=(
                "Analyze it now, and schedule ANALYZE of it (say after bulk loads): autovacuum "
                "never will."
            ),
            fix_sql=f"ANALYZE {qualified(table.schema, table.name)};",
        )


def widths_of(
    column_stats: Mapping[tuple[str, str], Mapping[str, ColumnStat]], table: Table
) -> list[ColumnWidth] | None:
    """The planner's column widths of `table`, None before it was ever analyzed."""
    stats = column_stats.get((table.schema, table.name))
    if not stats:
        return None
    return [ColumnWidth(s.avg_width, s.null_frac) for s in stats.values()]


def _widths(context: DbContext, table: Table) -> list[ColumnWidth] | None:
    return widths_of(context.catalog.column_stats, table)


class TableBloat(DbCheck):
    id = "table_bloat"
    category = "tables"
    summary = (
        "A table whose dead tuples, or whose size beyond the estimate for its live rows, exceed "
        "thresholds.table_bloat_ratio (default 30%) of it and thresholds.table_bloat_min_bytes."
    )

    def run(self, context: DbContext) -> Iterable[Finding]:
        t = context.thresholds
        block = context.summary.block_size
        for table in context.catalog.tables:
            if table.partitioned or table.heap_bytes < t.table_bloat_min_bytes:
                continue
            tuples = table.n_live_tup + table.n_dead_tup
            dead_ratio = table.n_dead_tup / tuples if tuples else 0.0
            widths = _widths(context, table)
            fillfactor = int(table.option("fillfactor") or 100)
            est = (
                heap_estimate(table.heap_bytes, float(table.n_live_tup), widths, block, fillfactor)
                if widths and table.n_live_tup
                else None
            )
            est_ratio = est.bloat_ratio if est else 0.0
            ratio = max(dead_ratio, est_ratio)
            wasted = int(ratio * table.heap_bytes)
            if ratio < t.table_bloat_ratio or wasted < t.table_bloat_min_bytes:
                continue
            heavy = ratio >= t.table_bloat_rewrite_ratio
            name = qualified(table.schema, table.name)
            if heavy:
                rec = (
                    "VACUUM makes the dead space reusable but does not return it; to shrink the "
                    "table, rewrite it (VACUUM FULL takes an exclusive lock; pg_repack does not)."
                )
                fix = (
                    f"VACUUM (ANALYZE) {name};\n"
                    f"-- to shrink, in a maintenance window:\n-- VACUUM FULL {name};"
                )
            else:
                rec = "Vacuum it, and tune autovacuum for it if this recurs."
                fix = f"VACUUM (ANALYZE) {name};"
            yield self.finding(
                context,
                severity=Severity.critical if heavy else Severity.warning,
                object=table.qualified,
                title=(
                    f"{table.qualified} is about {ratio:.0%} dead space "
                    f"({human_bytes(wasted)} of {human_bytes(table.heap_bytes)})"
                ),
                detail=(
                    f"{table.n_dead_tup:,} dead and {table.n_live_tup:,} live tuples. Sequential "
                    "scans read the dead space too, and the cache holds less live data."
                ),
                evidence={
                    "heap_bytes": table.heap_bytes,
                    "n_dead_tup": table.n_dead_tup,
                    "n_live_tup": table.n_live_tup,
                    "dead_tuple_ratio": round(dead_ratio, 3),
                    "estimated_bloat_ratio": round(est_ratio, 3) if est else None,
                    "expected_bytes": est.expected_bytes if est else None,
                    "wasted_bytes": wasted,
                    "last_vacuum": _iso(table.last_vacuumed),
                },
                recommendation=rec,
                fix_sql=fix,
            )


class LargeTable(DbCheck):
    id = "large_table"
    category = "tables"
    summary = (
        "A table whose total size (heap, indexes, TOAST) is at least thresholds.large_table_bytes "
        "(default 1 GiB); shows growth once an earlier run left a size snapshot."
    )

    def run(self, context: DbContext) -> Iterable[Finding]:
        t = context.thresholds
        history = context.history
        sizes: dict[str, tuple[int, float]] = {}
        findings: list[Finding] = []
        for table in context.catalog.tables:
            if table.partitioned:
                # no storage of its own: it is as large as its partitions together
                parts = context.catalog.leaf_partitions(table.oid)
                table = replace(
                    table,
                    total_bytes=sum(p.total_bytes for p in parts),
                    heap_bytes=sum(p.heap_bytes for p in parts),
                    index_bytes=sum(p.index_bytes for p in parts),
                    toast_bytes=sum(p.toast_bytes for p in parts),
                    reltuples=sum(max(p.rows, 0.0) for p in parts),
                )
            sizes[table.qualified] = (table.total_bytes, table.rows)
            if table.total_bytes < t.large_table_bytes:
                continue
            evidence: dict[str, object] = {
                "total_bytes": table.total_bytes,
                "heap_bytes": table.heap_bytes,
                "index_bytes": table.index_bytes,
                "toast_bytes": table.toast_bytes,
                "rows": table.rows,
            }
            if table.partitioned:
                evidence["partitions"] = len(context.catalog.leaf_partitions(table.oid))
            growth = ""
            prev = history.previous.get(table.qualified) if history else None
            if prev is not None:
                days = (context.now - prev.taken_at).total_seconds() / 86400
                delta = table.total_bytes - prev.total_bytes
                evidence.update(
                    previous_total_bytes=prev.total_bytes,
                    previous_at=prev.taken_at.isoformat(),
                    growth_bytes=delta,
                    growth_bytes_per_day=round(delta / days) if days > 0 else None,
                )
                growth = f", {'+' if delta >= 0 else '-'}{human_bytes(abs(delta))} since last run"
            findings.append(
                self.finding(
                    context,
                    severity=Severity.info,
                    object=table.qualified,
                    title=(
                        f"Large table {table.qualified}: {human_bytes(table.total_bytes)}{growth}"
                    ),
                    detail=(
                        f"heap {human_bytes(table.heap_bytes)}, "
                        f"indexes {human_bytes(table.index_bytes)}, "
                        f"TOAST {human_bytes(table.toast_bytes)}, ~{table.rows:,.0f} rows."
                    ),
                    evidence=evidence,
                    recommendation=(
                        "Watch its growth; if queries filter on time or a tenant, consider "
                        "partitioning so maintenance and scans touch only the parts that matter."
                    ),
                )
            )
        if history is not None:
            history.save(context.now, sizes)
        return findings


class SeqScanHeavy(DbCheck):
    id = "seq_scan_heavy"
    category = "tables"
    summary = (
        "A table of at least thresholds.seq_scan_min_bytes scanned sequentially at least "
        "thresholds.seq_scan_min_scans times, where sequential scans deliver at least "
        "thresholds.seq_scan_ratio of the rows read from it."
    )

    def run(self, context: DbContext) -> Iterable[Finding]:
        t = context.thresholds
        # Rows, not scan counts: a table probed by millions of foreign-key lookups can still
        # be read in full hundreds of times, and those full reads are where the time goes.
        candidates = [
            table
            for table in context.catalog.tables
            if not table.partitioned
            and table.heap_bytes >= t.seq_scan_min_bytes
            and table.seq_scan >= t.seq_scan_min_scans
            and table.seq_tup_read / max(table.seq_tup_read + table.idx_tup_fetch, 1)
            >= t.seq_scan_ratio
        ]
        if not candidates:
            return
        try:
            statements = sorted(context.statements.statements, key=lambda s: -s.total_exec_time)
        except Exception:  # the finding stands without statements when they cannot be read
            statements = []
        for table in candidates:
            rows_per_scan = table.seq_tup_read / table.seq_scan
            share = table.seq_tup_read / max(table.seq_tup_read + table.idx_tup_fetch, 1)
            related = [s for s in statements[:500] if mentions(s.query, table.schema, table.name)]
            shown = related[:5]
            detail = (
                f"{table.seq_scan:,} sequential scans read {rows_per_scan:,.0f} rows each on "
                f"average ({table.seq_tup_read:,} rows in all), against {table.idx_scan:,} "
                f"index scans fetching {table.idx_tup_fetch:,} rows."
            )
            if shown:
                detail += " Statements that read it: " + "; ".join(
                    short_query(s.query, 70) for s in shown
                )
            yield self.finding(
                context,
                severity=Severity.warning,
                object=table.qualified,
                title=(
                    f"{table.qualified} ({human_bytes(table.heap_bytes)}) is read by sequential "
                    f"scans: {share:.0%} of the rows read from it"
                ),
                detail=detail,
                evidence={
                    "heap_bytes": table.heap_bytes,
                    "seq_scan": table.seq_scan,
                    "seq_tup_read": table.seq_tup_read,
                    "rows_per_seq_scan": round(rows_per_scan),
                    "idx_scan": table.idx_scan,
                    "idx_tup_fetch": table.idx_tup_fetch,
                    "seq_read_share": round(share, 4),
                    "statements": [
                        {
                            "queryid": s.queryid,
                            "query": s.query,
                            "calls": s.calls,
                            "mean_ms": round(s.mean_exec_time, 3),
                        }
                        for s in shown
                    ],
                },
                recommendation=(
                    "Index the columns these statements filter or join on, so they read a few "
                    "pages instead of the whole table."
                ),
            )


class XidWraparoundRisk(DbCheck):
    id = "xid_wraparound_risk"
    category = "tables"
    summary = (
        "The database or a table has a transaction-id age over thresholds.xid_age_warning "
        "(critical over thresholds.xid_age_critical); at 2^31 the server stops taking writes."
    )

    def run(self, context: DbContext) -> Iterable[Finding]:
        t = context.thresholds
        s = context.summary
        if s.xid_age >= t.xid_age_warning:
            yield self._finding(context, s.database, s.xid_age, "database", s.database)
        for table in context.catalog.tables:
            if not table.partitioned and table.xid_age >= t.xid_age_warning:
                yield self._finding(
                    context,
                    table.qualified,
                    table.xid_age,
                    "table",
                    qualified(table.schema, table.name),
                )

    def _finding(self, context: DbContext, obj: str, age: int, what: str, name: str) -> Finding:
        t = context.thresholds
        left = XID_LIMIT - age
        fix = f"VACUUM (FREEZE, VERBOSE) {name};" if what == "table" else None
        return self.finding(
            context,
            severity=Severity.critical if age >= t.xid_age_critical else Severity.warning,
            object=obj,
            title=(
                f"Transaction ID age of {what} {obj} is {age:,} "
                f"({age / XID_LIMIT:.0%} of the limit)"
            ),
            detail=(
                f"{left:,} transactions remain before wraparound protection stops writes. "
                f"autovacuum_freeze_max_age is {context.summary.autovacuum_freeze_max_age:,}; "
                "an age far past it means freezing vacuums are not finishing (long transactions, "
                "abandoned replication slots or prepared transactions hold them back)."
            ),
            evidence={
                "xid_age": age,
                "remaining": left,
                "autovacuum_freeze_max_age": context.summary.autovacuum_freeze_max_age,
            },
            recommendation=(
                "Find what holds back the xmin horizon (pg_stat_activity.backend_xmin, "
                "pg_replication_slots, pg_prepared_xacts) and run a freezing vacuum."
                if what == "table"
                else "Vacuum-freeze the oldest tables of this database (the per-table "
                "xid_wraparound_risk findings name them), and find what holds back the xmin "
                "horizon."
            ),
            fix_sql=fix,
        )


class VacuumOverdue(DbCheck):
    id = "vacuum_overdue"
    category = "tables"
    summary = (
        "A table whose dead tuples passed its autovacuum trigger (threshold + scale factor x "
        "rows) and thresholds.vacuum_overdue_min_dead_tuples while autovacuum is disabled for "
        "it, or with no vacuum in thresholds.vacuum_overdue_hours."
    )

    def run(self, context: DbContext) -> Iterable[Finding]:
        s = context.summary
        horizon = context.now - timedelta(hours=context.thresholds.vacuum_overdue_hours)
        for table in context.catalog.tables:
            if table.partitioned:
                continue  # nothing to vacuum: its partitions are checked one by one
            base = float(
                table.option("autovacuum_vacuum_threshold") or s.autovacuum_vacuum_threshold
            )
            scale = float(
                table.option("autovacuum_vacuum_scale_factor") or s.autovacuum_vacuum_scale_factor
            )
            trigger = base + scale * max(table.rows, 0.0)
            if table.n_dead_tup <= trigger or (
                table.n_dead_tup < context.thresholds.vacuum_overdue_min_dead_tuples
            ):
                continue
            disabled = table.autovacuum_disabled or not s.autovacuum
            last = table.last_vacuumed
            if not disabled:
                if last is not None and last > horizon:
                    continue  # vacuumed recently; it will come round again
                # never vacuumed: give autovacuum a fair chance (an hour of statistics)
                if last is None and (table.n_dead_tup < 2 * trigger or s.stats_age_days < 1 / 24):
                    continue
            why = (
                "autovacuum is disabled for it"
                if table.autovacuum_disabled
                else "autovacuum is off for the server"
                if not s.autovacuum
                else "autovacuum has not kept up (blocked by locks, long transactions, "
                "or too few workers)"
            )
            yield self.finding(
                context,
                severity=Severity.warning,
                object=table.qualified,
                title=(
                    f"Vacuum overdue on {table.qualified}: {table.n_dead_tup:,} dead tuples, "
                    f"trigger is {trigger:,.0f}"
                ),
                detail=f"Dead tuples are past the autovacuum trigger and {why}.",
                evidence={
                    "n_dead_tup": table.n_dead_tup,
                    "autovacuum_trigger": round(trigger),
                    "last_vacuum": _iso(table.last_vacuum),
                    "last_autovacuum": _iso(table.last_autovacuum),
                    "autovacuum_enabled": not disabled,
                },
                recommendation=(
                    "Vacuum it now"
                    + (
                        " and re-enable autovacuum for it."
                        if disabled
                        else "; then find what blocks autovacuum."
                    )
                ),
                fix_sql=(
                    f"VACUUM (ANALYZE) {qualified(table.schema, table.name)};"
                    + (
                        f"\nALTER TABLE {qualified(table.schema, table.name)} "
                        "RESET (autovacuum_enabled);"
                        if table.autovacuum_disabled
                        else ""
                    )
                ),
            )


CHECKS = [
    StaleStatistics(),
    TableBloat(),
    LargeTable(),
    SeqScanHeavy(),
    XidWraparoundRisk(),
    VacuumOverdue(),
]

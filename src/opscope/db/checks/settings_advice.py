"""Server settings from the measured workload, not from a formula on memory alone: work_mem
from the temp files real statements write, shared_buffers and effective_cache_size from the
hit ratio, the database's size and the server's memory, max_connections from the peak
actually used, and the autovacuum settings of tables that bloat. Each comes with the line
that changes it and the figures behind it."""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from opscope.atomic import write_atomic
from opscope.db.activity import ServerHealth, activity_of
from opscope.db.checks.base import DbCheck
from opscope.db.context import DbContext
from opscope.db.statements import is_maintenance
from opscope.findings import Finding, Severity
from opscope.sqltext import qualified, quote_ident, short_query
from opscope.units import human_bytes

MB = 1 << 20
#: an in-memory sort takes 2-3 times what the same rows take in temp files (measured with
#: EXPLAIN ANALYZE on PostgreSQL 15: 11.4 MB on disk took 23.3 MB in memory, 5.1 MB took
#: 15.9 MB); 4 times leaves room for a hash that also spills
SPILL_TO_MEMORY = 4.0
#: shared_buffers beyond a quarter of memory leaves the operating system's cache too little
SHARED_BUFFERS_SHARE = 0.25
#: effective_cache_size: what shared buffers and the OS cache can hold together
EFFECTIVE_CACHE_SHARE = 0.75


def setting_text(n: float) -> str:
    """A size as PostgreSQL's settings read it: whole MB, or GB when exact."""
    mb = max(1, math.ceil(n / MB))
    return f"{mb // 1024}GB" if mb >= 1024 and mb % 1024 == 0 else f"{mb}MB"


def next_power_of_two_mb(n: float) -> int:
    mb = max(1, math.ceil(n / MB))
    return (1 << (mb - 1).bit_length()) * MB


def _local(addr: str | None) -> bool:
    if addr is None:
        return True  # a Unix socket: the server is on this host
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


def server_memory(context: DbContext, server: ServerHealth) -> tuple[int | None, str]:
    """The database server's memory and where the figure came from: the setting, else this
    host's when the server runs here, else unknown."""
    configured = context.settings.health.server_memory_bytes
    if configured:
        return configured, "postgresql.health.server_memory_bytes"
    if _local(server.server_addr):
        import psutil

        return int(psutil.virtual_memory().total), "this host, where the server runs"
    return None, "unknown"


class WorkMemAdvice(DbCheck):
    id = "work_mem_advice"
    category = "settings"
    summary = (
        "Statements in pg_stat_statements wrote at least health.work_mem_min_temp_bytes "
        "(1 MiB) of temp files per call (sorts and hashes that spilled to disk): work_mem "
        "sized at 4× the largest spill per call, server-wide when work_mem for every usable "
        "connection fits in health.work_mem_memory_share (25%) of the server's memory, else "
        "for the roles that run them."
    )

    def run(self, context: DbContext) -> Iterable[Finding]:
        health = context.settings.health
        server = activity_of(context).server
        block = context.summary.block_size
        spilling = []
        for s in context.statements.statements:
            if not s.calls or not s.toplevel or is_maintenance(s.query):
                continue
            if s.query.lstrip().upper().startswith("EXPLAIN"):
                continue  # someone measuring; the statement itself is counted on its own
            per_call = s.temp_blks_written * block / s.calls
            if per_call >= max(1, health.work_mem_min_temp_bytes):
                spilling.append((per_call, s))
        if not spilling:
            return
        spilling.sort(key=lambda p: (-p[0], p[1].queryid))
        largest = spilling[0][0]
        wanted = next_power_of_two_mb(largest * SPILL_TO_MEMORY)
        if wanted <= server.work_mem_bytes:
            return
        memory, source = server_memory(context, server)
        slots = max(1, server.usable_connections)
        budget = memory * health.work_mem_memory_share / slots if memory else None
        value = setting_text(wanted)
        roles = sorted({s.username for _, s in spilling if s.username})
        if budget is not None and wanted <= budget:
            fix = f"ALTER SYSTEM SET work_mem = '{value}';\nSELECT pg_reload_conf();"
            scope = "server-wide"
        else:
            lines = [f"ALTER ROLE {quote_ident(r)} SET work_mem = '{value}';" for r in roles]
            fix = "\n".join(lines) or f"SET work_mem = '{value}';"
            scope = "for the roles that run these statements"
        of_memory = (
            f" of {human_bytes(memory)} (memory: {source})"
            if memory
            else " (the server's memory is unknown)"
        )
        why = (
            f"work_mem {value} for each of the {slots} usable connections takes "
            f"{human_bytes(wanted * slots)}{of_memory}"
        )
        shown = spilling[:5]
        yield self.finding(
            context,
            severity=Severity.warning,
            object="work_mem",
            title=(
                f"{len(spilling)} statement{'s' if len(spilling) > 1 else ''} "
                f"spill{'' if len(spilling) > 1 else 's'} to disk at "
                f"work_mem {setting_text(server.work_mem_bytes)}: set it to {value} {scope}"
            ),
            detail=(
                f"The largest writes {human_bytes(largest)} of temp files per call: "
                f"{short_query(shown[0][1].query, 70)}. An in-memory sort needs 2-3 times what "
                f"it writes to disk; {value} holds 4 times the largest spill. {why}."
            ),
            evidence={
                "work_mem_bytes": server.work_mem_bytes,
                "recommended_bytes": wanted,
                "recommended": value,
                "server_memory_bytes": memory,
                "server_memory_source": source,
                "usable_connections": slots,
                "budget_per_connection_bytes": None if budget is None else int(budget),
                "scope": scope,
                "roles": roles,
                "statements": [
                    {
                        "queryid": s.queryid,
                        "query": s.query,
                        "user": s.username,
                        "calls": s.calls,
                        "temp_bytes_per_call": int(per_call),
                        "mean_ms": round(s.mean_exec_time, 3),
                    }
                    for per_call, s in shown
                ],
            },
            recommendation=(
                f"Try it in one session first (SET work_mem = '{value}'; then EXPLAIN "
                "(ANALYZE) the statement: the sort should say 'quicksort  Memory'), then apply "
                "it. An index on the sort key avoids the sort altogether."
            ),
            fix_sql=fix,
        )


class SharedBuffersAdvice(DbCheck):
    id = "shared_buffers_advice"
    category = "settings"
    summary = (
        "The cache hit ratio is below health.cache_hit_ratio over health.cache_min_blocks "
        "block accesses, the database is larger than shared_buffers, and shared_buffers is "
        "below 25% of the server's memory: raise it toward the database's size, at most 25% "
        "of memory."
    )

    def run(self, context: DbContext) -> Iterable[Finding]:
        health = context.settings.health
        s = context.summary
        ratio = s.cache_hit_ratio
        if ratio is None or s.blks_hit + s.blks_read < health.cache_min_blocks:
            return
        if ratio >= health.cache_hit_ratio:
            return
        server = activity_of(context).server
        memory, source = server_memory(context, server)
        if memory is None:
            return
        ceiling = memory * SHARED_BUFFERS_SHARE
        current = server.shared_buffers_bytes
        if current >= ceiling or s.database_bytes <= current:
            return
        wanted = min(next_power_of_two_mb(s.database_bytes * 1.2), int(ceiling) // MB * MB)
        if wanted <= current:
            return
        value = setting_text(wanted)
        yield self.finding(
            context,
            severity=Severity.warning,
            object="shared_buffers",
            title=(
                f"shared_buffers {setting_text(current)} holds too little of {s.database} "
                f"({human_bytes(s.database_bytes)}, {ratio:.1%} hit ratio): set it to {value}"
            ),
            detail=(
                f"{s.blks_read:,} block reads missed shared buffers. {value} holds the "
                f"database with room to spare, within a quarter of the server's "
                f"{human_bytes(memory)} ({source}); the rest stays for the operating system's "
                "cache and work_mem. It takes a restart."
            ),
            evidence={
                "shared_buffers_bytes": current,
                "recommended_bytes": wanted,
                "recommended": value,
                "cache_hit_ratio": round(ratio, 4),
                "blks_read": s.blks_read,
                "blks_hit": s.blks_hit,
                "database_bytes": s.database_bytes,
                "server_memory_bytes": memory,
                "server_memory_source": source,
            },
            recommendation="Apply it and restart the server in a quiet hour.",
            fix_sql=f"ALTER SYSTEM SET shared_buffers = '{value}';  -- takes a restart",
        )


class EffectiveCacheSizeAdvice(DbCheck):
    id = "effective_cache_size_advice"
    category = "settings"
    summary = (
        "effective_cache_size is below half of the server's memory and smaller than the "
        "database: the planner believes less of the data is cached than is, and avoids index "
        "scans; set it to 75% of memory."
    )

    def run(self, context: DbContext) -> Iterable[Finding]:
        server = activity_of(context).server
        memory, source = server_memory(context, server)
        if memory is None:
            return
        current = server.effective_cache_size_bytes
        db_bytes = context.summary.database_bytes
        if current >= memory * 0.5 or db_bytes <= current:
            return
        wanted = int(memory * EFFECTIVE_CACHE_SHARE) // MB * MB
        value = setting_text(wanted)
        yield self.finding(
            context,
            severity=Severity.info,
            object="effective_cache_size",
            title=(
                f"effective_cache_size {setting_text(current)} is below the database's "
                f"{human_bytes(db_bytes)} on a server with {human_bytes(memory)}: set it to {value}"
            ),
            detail=(
                "It allocates nothing: it tells the planner how much of the data shared "
                "buffers and the operating system's cache hold together, and a low value makes "
                f"index scans look costlier than they are. Memory from {source}."
            ),
            evidence={
                "effective_cache_size_bytes": current,
                "recommended_bytes": wanted,
                "recommended": value,
                "database_bytes": db_bytes,
                "server_memory_bytes": memory,
                "server_memory_source": source,
            },
            recommendation="Apply it; a reload is enough.",
            fix_sql=f"ALTER SYSTEM SET effective_cache_size = '{value}';\nSELECT pg_reload_conf();",
        )


def connection_peak(context: DbContext, used: int, now: datetime) -> tuple[int, int, str]:
    """(peak, runs, since): the most client connections seen by any run of `analyze db` on
    this target, this one's included, kept in the state directory beside the table sizes."""
    history = context.history
    if history is None:
        return used, 1, now.isoformat()
    path: Path = history.path.parent.parent / "connections" / f"{history.path.stem}.json"
    peak, runs, since = used, 1, now.isoformat()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        peak = max(used, int(raw["peak"]))
        runs = int(raw["runs"]) + 1
        since = str(raw["since"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"peak": peak, "runs": runs, "since": since})
        write_atomic(path, text + "\n", private=True)
    except OSError:
        pass  # no history kept only means this run's figure alone
    return peak, runs, since


class MaxConnectionsAdvice(DbCheck):
    id = "max_connections_advice"
    category = "settings"
    summary = (
        "The peak of client connections seen (this run and earlier ones on the same target) "
        "reaches health.max_connections_peak_ratio (80%) of the usable slots: a pooler, and "
        "max_connections with headroom; or, seen over 3 runs or more, the peak stays under a "
        "quarter of a max_connections of 200 or more: lower it."
    )

    def run(self, context: DbContext) -> Iterable[Finding]:
        health = context.settings.health
        activity = activity_of(context)
        server = activity.server
        used = len(activity.clients)
        peak, runs, since = connection_peak(context, used, context.now)
        usable = server.usable_connections
        reserved = server.max_connections - usable
        evidence = {
            "peak_connections": peak,
            "connections_now": used,
            "runs": runs,
            "peak_since": since,
            "max_connections": server.max_connections,
            "usable": usable,
        }
        if usable > 0 and peak >= health.max_connections_peak_ratio * usable:
            wanted = math.ceil(peak * 1.5) + reserved
            yield self.finding(
                context,
                severity=Severity.warning,
                object="max_connections",
                title=(
                    f"Connections peaked at {peak} of {usable} usable slots: pool them, or "
                    f"raise max_connections to {wanted}"
                ),
                detail=(
                    "Each server connection is a process with its own memory; a few dozen busy "
                    "ones saturate the CPU long before hundreds are reached. A pooler lets many "
                    "clients share a few server connections."
                ),
                evidence={**evidence, "recommended": wanted},
                recommendation=(
                    "Put PgBouncer (pool_mode = transaction) in front and point the "
                    "applications at it, with a default_pool_size of about twice the server's "
                    "cores; raise max_connections only as a stopgap (it takes a restart)."
                ),
                fix_sql=f"ALTER SYSTEM SET max_connections = {wanted};  -- takes a restart",
            )
        elif runs >= 3 and server.max_connections >= 200 and peak < 0.25 * usable:
            wanted = max(100, math.ceil(peak * 2) + reserved)
            yield self.finding(
                context,
                severity=Severity.info,
                object="max_connections",
                title=(
                    f"max_connections is {server.max_connections} but at most {peak} "
                    f"connections were seen over {runs} runs: {wanted} is enough"
                ),
                detail=(
                    "Every slot costs shared memory and lock-table space whether it is used or "
                    "not, and a high limit lets a runaway client open hundreds of processes."
                ),
                evidence={**evidence, "recommended": wanted},
                recommendation="Lower it in a maintenance window (it takes a restart).",
                fix_sql=f"ALTER SYSTEM SET max_connections = {wanted};  -- takes a restart",
            )


def target_scale_factor(rows: float) -> float:
    """A scale factor that vacuums a table at a few percent of dead rows: the default 20%
    lets a table of 10 million rows gather 2 million dead ones first."""
    if rows < 1_000_000:
        return 0.05
    if rows < 10_000_000:
        return 0.02
    return 0.01


class AutovacuumAdvice(DbCheck):
    id = "autovacuum_advice"
    category = "settings"
    summary = (
        "A table of at least thresholds.table_bloat_min_bytes whose dead rows reach "
        "thresholds.table_bloat_ratio (30%) of its rows, that was updated or deleted from at "
        "least its own size since the statistics began, and whose autovacuum scale factor is "
        "above what its size calls for (5% under a million rows, 2% under ten million, else "
        "1%): a per-table scale factor."
    )

    def run(self, context: DbContext) -> Iterable[Finding]:
        t = context.thresholds
        for table in activity_of(context).tables:
            if table.heap_bytes < t.table_bloat_min_bytes or table.dead_share < t.table_bloat_ratio:
                continue
            if table.changes < max(table.n_live_tup, 1):
                continue
            target = target_scale_factor(table.n_live_tup)
            if table.scale_factor <= target:
                continue  # autovacuum is already told to come early: the cause is elsewhere
            trigger_now = table.threshold + table.scale_factor * table.n_live_tup
            trigger_then = table.threshold + target * table.n_live_tup
            yield self.finding(
                context,
                severity=Severity.warning,
                object=table.qualified,
                title=(
                    f"{table.qualified} bloats: {table.dead_share:.0%} dead rows; vacuum it at "
                    f"{target:.0%} of its rows instead of {table.scale_factor:.0%}"
                ),
                detail=(
                    f"{table.changes:,} rows were updated or deleted against {table.n_live_tup:,} "
                    f"live ones; autovacuum starts only after {trigger_now:,.0f} dead rows "
                    f"({table.autovacuum_count} autovacuum runs so far). At {target:.0%} it "
                    f"starts after {trigger_then:,.0f}."
                ),
                evidence={
                    "schema": table.schema,
                    "table": table.name,
                    "heap_bytes": table.heap_bytes,
                    "n_live_tup": table.n_live_tup,
                    "n_dead_tup": table.n_dead_tup,
                    "dead_share": round(table.dead_share, 3),
                    "changes": table.changes,
                    "autovacuum_count": table.autovacuum_count,
                    "scale_factor": table.scale_factor,
                    "recommended_scale_factor": target,
                    "vacuum_trigger_rows": round(trigger_now),
                    "recommended_trigger_rows": round(trigger_then),
                },
                recommendation=(
                    "Set the table's own scale factor, then VACUUM it once to reclaim what is "
                    "dead now (table_bloat)."
                ),
                fix_sql=(
                    f"ALTER TABLE {qualified(table.schema, table.name)} SET "
                    f"(autovacuum_vacuum_scale_factor = {target});"
                ),
            )


CHECKS = [
    WorkMemAdvice(),
    SharedBuffersAdvice(),
    EffectiveCacheSizeAdvice(),
    MaxConnectionsAdvice(),
    AutovacuumAdvice(),
]

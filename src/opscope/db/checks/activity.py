"""What the server is doing now: connections against the slots there are, sessions left idle
in a transaction, long statements, sessions blocked behind another's locks, the cache hit
ratio and replication slots nobody reads."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from opscope.db.activity import Backend, Chain, activity_of
from opscope.db.checks.base import DbCheck
from opscope.db.context import DbContext
from opscope.findings import Finding, Severity
from opscope.redact import redact
from opscope.sqltext import short_query
from opscope.units import human_bytes

#: entries kept per breakdown of the connections (by user, by application, ...)
TOP = 10


def duration(seconds: float | None) -> str:
    """12 s, 4.5 min, 2.0 h, 3.1 days."""
    if seconds is None:
        return "?"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def query_of(b: Backend) -> str:
    """A session's statement as it may be shown: passwords masked."""
    return redact(b.query or "")


def who(b: Backend) -> str:
    app = f", {b.application_name}" if b.application_name else ""
    return f"pid {b.pid} ({b.username or '?'}@{b.database or '?'}{app})"


def session_evidence(b: Backend) -> dict[str, object]:
    return {
        "pid": b.pid,
        "user": b.username,
        "database": b.database,
        "application": b.application_name,
        "client_addr": b.client_addr,
        "state": b.state,
        "wait_event": f"{b.wait_event_type}:{b.wait_event}" if b.wait_event_type else None,
        "query": query_of(b),
        "transaction_age_s": None if b.xact_age_s is None else round(b.xact_age_s, 1),
        "query_age_s": None if b.query_age_s is None else round(b.query_age_s, 1),
        "state_age_s": None if b.state_age_s is None else round(b.state_age_s, 1),
    }


def _top(counter: Counter[str]) -> dict[str, int]:
    return dict(counter.most_common(TOP))


def connection_breakdown(clients: list[Backend]) -> dict[str, dict[str, int]]:
    return {
        "by_state": _top(Counter(b.state or "unknown" for b in clients)),
        "by_user": _top(Counter(b.username or "?" for b in clients)),
        "by_application": _top(Counter(b.application_name or "(none)" for b in clients)),
        "by_database": _top(Counter(b.database or "?" for b in clients)),
    }


class ConnectionSaturation(DbCheck):
    id = "connection_saturation"
    category = "connections"
    summary = (
        "Client connections reach health.connection_warning_ratio (80%) of the slots ordinary "
        "roles may use (max_connections less the reserved ones); critical from "
        "health.connection_critical_ratio (95%)."
    )

    def run(self, context: DbContext) -> Iterable[Finding]:
        health = context.settings.health
        activity = activity_of(context)
        server = activity.server
        clients = activity.clients
        usable = server.usable_connections
        if usable <= 0:
            return
        used = len(clients)
        ratio = used / usable
        if ratio < health.connection_warning_ratio:
            return
        breakdown = connection_breakdown(clients)
        idle = breakdown["by_state"].get("idle", 0)
        severity = (
            Severity.critical if ratio >= health.connection_critical_ratio else Severity.warning
        )
        yield self.finding(
            context,
            severity=severity,
            object="max_connections",
            title=(
                f"{used} of {usable} connection slots in use ({ratio:.0%}); "
                f"max_connections is {server.max_connections}"
            ),
            detail=(
                f"{server.superuser_reserved + server.reserved_connections} more slots are "
                "reserved for superusers and pg_use_reserved_connections. Once the rest are "
                "taken, new connections fail with 'remaining connection slots are reserved'. "
                f"{idle} of the connections are idle: held by clients that are not using them."
            ),
            evidence={
                "connections": used,
                "usable": usable,
                "max_connections": server.max_connections,
                "superuser_reserved_connections": server.superuser_reserved,
                "reserved_connections": server.reserved_connections,
                "usage": round(ratio, 3),
                **breakdown,
            },
            recommendation=(
                "Put a pooler in front (PgBouncer with pool_mode = transaction) so many client "
                "connections share a few server ones, size the applications' pools to what "
                "they use (see pool_saturation in `opscope analyze resources`), and close idle "
                "sessions (idle_session_timeout). max_connections_advice gives the setting."
            ),
        )


class IdleInTransaction(DbCheck):
    id = "idle_in_transaction"
    category = "activity"
    summary = (
        "A session has been idle inside an open transaction for health.idle_in_transaction_s "
        "(60 s) or more (critical from idle_in_transaction_critical_s, 900 s, or when it blocks "
        "others): it holds its locks and keeps vacuum from removing dead rows."
    )

    def run(self, context: DbContext) -> Iterable[Finding]:
        health = context.settings.health
        activity = activity_of(context)
        server = activity.server
        blocking = {c.head.pid: len(c.waiters) for c in activity.chains}
        timeout_ms = max(1000, int(health.idle_in_transaction_critical_s * 1000))
        fix = None
        if server.idle_in_transaction_timeout_ms == 0:
            fix = (
                f"ALTER SYSTEM SET idle_in_transaction_session_timeout = '{timeout_ms // 1000}s';\n"
                "SELECT pg_reload_conf();"
            )
        for b in activity.others:
            if not b.state or not b.state.startswith("idle in transaction"):
                continue
            idle_s = b.state_age_s or 0.0
            if idle_s < health.idle_in_transaction_s:
                continue
            waiters = blocking.get(b.pid, 0)
            critical = idle_s >= health.idle_in_transaction_critical_s or waiters > 0
            last = short_query(query_of(b), 70)
            detail = (
                f"Its transaction began {duration(b.xact_age_s)} ago; its last statement was: "
                f"{last}. Until it ends, it keeps its locks and the xmin horizon: vacuum "
                "cannot remove rows that died after it began."
            )
            if waiters:
                detail += f" {waiters} session{'s' if waiters > 1 else ''} wait behind it now."
            yield self.finding(
                context,
                severity=Severity.critical if critical else Severity.warning,
                object=f"pid:{b.pid}",
                title=f"Session {who(b)} idle in transaction for {duration(idle_s)}",
                detail=detail,
                evidence={**session_evidence(b), "blocked_sessions": waiters},
                recommendation=(
                    "Find why the application leaves the transaction open (a missing commit, "
                    "work done between statements); end this one with "
                    f"SELECT pg_terminate_backend({b.pid}); once you know what it is. "
                    + (
                        "A server-wide idle_in_transaction_session_timeout ends such sessions "
                        "by itself."
                        if fix
                        else f"idle_in_transaction_session_timeout is "
                        f"{server.idle_in_transaction_timeout_ms} ms here."
                    )
                ),
                fix_sql=fix,
            )


class LongRunningQuery(DbCheck):
    id = "long_running_query"
    category = "activity"
    summary = (
        "A client statement has been running for health.long_query_s (300 s) or more "
        "(critical from long_query_critical_s, 3600 s). Sessions waiting for a lock are "
        "blocked_queries' instead."
    )

    def run(self, context: DbContext) -> Iterable[Finding]:
        health = context.settings.health
        for b in activity_of(context).others:
            if b.state != "active" or not b.client or b.wait_event_type == "Lock":
                continue
            age = b.query_age_s or 0.0
            if age < health.long_query_s:
                continue
            yield self.finding(
                context,
                severity=(
                    Severity.critical if age >= health.long_query_critical_s else Severity.warning
                ),
                object=f"pid:{b.pid}",
                title=f"Statement running for {duration(age)} in {who(b)}: "
                f"{short_query(query_of(b), 60)}",
                detail=(
                    "A long statement holds its snapshot (vacuum cannot clean behind it), its "
                    "locks and a connection, and often means a plan gone wrong."
                ),
                evidence=session_evidence(b),
                recommendation=(
                    "Look at its plan (`opscope explain`); cancel it with "
                    f"SELECT pg_cancel_backend({b.pid}); if it must not run. A statement_timeout "
                    "for the role (ALTER ROLE ... SET statement_timeout) bounds such statements."
                ),
            )


def _chain_evidence(chain: Chain) -> dict[str, object]:
    return {
        "head": {**session_evidence(chain.head), "locks_held": [
            {"mode": lock.mode, "object": lock.what} for lock in chain.held
        ]},
        "waiters": [
            {
                "pid": w.pid,
                "user": w.username,
                "application": w.application_name,
                "waits_for_pid": parent,
                "lock_mode": lock.mode if lock else None,
                "object": lock.what if lock else None,
                "waiting_s": None if w.query_age_s is None else round(w.query_age_s, 1),
                "query": query_of(w),
            }
            for w, lock, parent in chain.waiters
        ],
        "depth": chain.depth,
        "objects": chain.objects,
    }  # fmt: skip


class BlockedQueries(DbCheck):
    id = "blocked_queries"
    category = "locks"
    summary = (
        "Sessions wait for a lock another session holds (pg_blocking_pids), one at least "
        "health.blocked_min_wait_s (5 s); one finding per chain, named by the session at its "
        "head, with the lock modes and the head's statement."
    )

    def run(self, context: DbContext) -> Iterable[Finding]:
        health = context.settings.health
        for chain in activity_of(context).chains:
            longest = max((w.query_age_s or 0.0) for w, _, _ in chain.waiters)
            if longest < health.blocked_min_wait_s:
                continue
            head = chain.head
            first = chain.waiters[0]
            lock = first[1]
            want = f" ({lock.mode} on {lock.what})" if lock else ""
            held = ", ".join(sorted({f"{h.mode} on {h.what}" for h in chain.held})) or "its locks"
            n = len(chain.waiters)
            critical = n >= 5 or longest >= health.long_query_s
            yield self.finding(
                context,
                severity=Severity.critical if critical else Severity.warning,
                object=chain.objects[0] if chain.objects else f"pid:{head.pid}",
                key=(head.pid,),
                title=(
                    f"{n} session{'s' if n > 1 else ''} blocked behind {who(head)} for up to "
                    f"{duration(longest)}"
                ),
                detail=(
                    f"The head of the chain ({head.state or 'unknown state'}) holds {held}; "
                    f"its statement: {short_query(query_of(head), 80)}. The first waiter, "
                    f"pid {first[0].pid}, wants{want}: {short_query(query_of(first[0]), 80)}."
                ),
                evidence=_chain_evidence(chain),
                recommendation=(
                    "End what the head is doing: commit or roll back its transaction "
                    f"(SELECT pg_terminate_backend({head.pid}); as a last resort). Keep "
                    "transactions that take strong locks (ALTER TABLE, LOCK, long UPDATEs) "
                    "short, and give such statements a lock_timeout so they wait instead of "
                    "making everyone behind them wait."
                ),
            )


class LowCacheHitRatio(DbCheck):
    id = "low_cache_hit_ratio"
    category = "memory"
    summary = (
        "Below health.cache_hit_ratio (99%) of the database's block reads were found in "
        "shared buffers, over at least health.cache_min_blocks block accesses since its "
        "statistics began."
    )

    def run(self, context: DbContext) -> Iterable[Finding]:
        health = context.settings.health
        s = context.summary
        ratio = s.cache_hit_ratio
        total = s.blks_hit + s.blks_read
        if ratio is None or total < health.cache_min_blocks or ratio >= health.cache_hit_ratio:
            return
        server = activity_of(context).server
        yield self.finding(
            context,
            severity=Severity.warning,
            object=s.database,
            title=(
                f"Cache hit ratio of {s.database} is {ratio:.1%} "
                f"(below {health.cache_hit_ratio:.0%})"
            ),
            detail=(
                f"{s.blks_read:,} of {total:,} block reads went past shared buffers "
                f"({human_bytes(server.shared_buffers_bytes)}) to the operating system or the "
                f"disk; the database is {human_bytes(s.database_bytes)}."
            ),
            evidence={
                "cache_hit_ratio": round(ratio, 4),
                "blks_hit": s.blks_hit,
                "blks_read": s.blks_read,
                "shared_buffers_bytes": server.shared_buffers_bytes,
                "database_bytes": s.database_bytes,
            },
            recommendation=(
                "Find the statements that read the most (slow_query's shared_blks_read); an "
                "index often makes a large read small. When the working set is simply larger "
                "than shared buffers, raise shared_buffers (shared_buffers_advice gives the "
                "value when the server's memory is known)."
            ),
        )


class ReplicationSlotInactive(DbCheck):
    id = "replication_slot_inactive"
    category = "replication"
    summary = (
        "A replication slot no client is reading holds back at least "
        "health.slot_retained_bytes (1 GiB) of WAL (critical when PostgreSQL already marks "
        "its WAL unreserved or lost): WAL accumulates until the disk is full."
    )

    def run(self, context: DbContext) -> Iterable[Finding]:
        health = context.settings.health
        for slot in activity_of(context).slots:
            if slot.active:
                continue
            retained = slot.retained_bytes or 0.0
            lost = slot.wal_status in ("unreserved", "lost")
            if retained < health.slot_retained_bytes and not lost:
                continue
            name = slot.slot_name.replace("'", "''")
            yield self.finding(
                context,
                severity=Severity.critical if lost else Severity.warning,
                object=slot.slot_name,
                title=(
                    f"Inactive {slot.slot_type} replication slot {slot.slot_name} holds "
                    f"{human_bytes(retained)} of WAL"
                ),
                detail=(
                    "No client reads this slot, so the server keeps every WAL segment since "
                    "its restart_lsn (and, for a logical slot, catalog rows vacuum may not "
                    f"remove). wal_status: {slot.wal_status or 'unknown'}."
                ),
                evidence={
                    "slot_type": slot.slot_type,
                    "plugin": slot.plugin,
                    "database": slot.database,
                    "wal_status": slot.wal_status,
                    "retained_bytes": retained,
                    "safe_wal_size": slot.safe_wal_size,
                    "xmin_age": slot.xmin_age,
                    "catalog_xmin_age": slot.catalog_xmin_age,
                    "bytes_freed": retained,
                },
                recommendation=(
                    "Reconnect its consumer (a standby, a CDC tool), or drop the slot if the "
                    "consumer is gone for good. max_slot_wal_keep_size bounds what a slot may "
                    "hold."
                ),
                fix_sql=f"SELECT pg_drop_replication_slot('{name}');",
            )


CHECKS = [
    ConnectionSaturation(),
    IdleInTransaction(),
    LongRunningQuery(),
    BlockedQueries(),
    LowCacheHitRatio(),
    ReplicationSlotInactive(),
]

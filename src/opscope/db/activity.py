"""What the server is doing now, as typed records: its sessions, who blocks whom and with
which locks, server-wide counters (WAL, checkpoints, temp files), replication and its slots.
Read once per run and shared by the health checks (`DbContext.shared`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import psycopg

from opscope.checks import CheckFailed
from opscope.db.catalog import _record, guarded
from opscope.db.context import DbContext

#: sessions that count as client connections (background workers, walsenders and autovacuum
#: have slots of their own)
CLIENT = "client backend"
_HINT = "grant the role pg_monitor"


@dataclass(frozen=True)
class Backend:
    pid: int
    database: str | None
    username: str | None
    application_name: str | None
    client_addr: str | None
    backend_type: str | None
    state: str | None
    wait_event_type: str | None
    wait_event: str | None
    query: str | None
    backend_age_s: float | None
    xact_age_s: float | None
    query_age_s: float | None
    state_age_s: float | None
    blocked_by: tuple[int, ...]
    own: bool

    @property
    def client(self) -> bool:
        return self.backend_type == CLIENT


@dataclass(frozen=True)
class Lock:
    pid: int
    locktype: str
    mode: str
    granted: bool
    relation: str | None
    transactionid: str | None
    virtualxid: str | None

    @property
    def what(self) -> str:
        """The object locked, as a person would name it."""
        if self.relation:
            return self.relation
        if self.locktype == "transactionid" and self.transactionid:
            return f"transaction {self.transactionid}"
        if self.locktype == "virtualxid" and self.virtualxid:
            return f"virtual transaction {self.virtualxid}"
        return self.locktype


@dataclass(frozen=True)
class ServerHealth:
    max_connections: int
    superuser_reserved: int
    reserved_connections: int
    shared_buffers_bytes: int
    work_mem_bytes: int
    effective_cache_size_bytes: int
    max_wal_size_bytes: int
    idle_in_transaction_timeout_ms: int
    in_recovery: bool
    wal_lsn_bytes: float | None
    wal_bytes: float | None
    wal_stats_age_s: float | None
    checkpoints_timed: int
    checkpoints_requested: int
    checkpoint_write_ms: float
    buffers_checkpoint: int
    checkpoint_stats_age_s: float | None
    temp_files: int | None
    temp_bytes: int | None
    uptime_s: float
    server_addr: str | None

    @property
    def usable_connections(self) -> int:
        """Slots an ordinary role may take: the rest are kept for superusers (and, from 16,
        for roles with pg_use_reserved_connections)."""
        return self.max_connections - self.superuser_reserved - self.reserved_connections

    @property
    def wal_bytes_per_s(self) -> float | None:
        """WAL written per second since pg_stat_wal was reset (PostgreSQL 14+)."""
        if self.wal_bytes is not None and self.wal_stats_age_s:
            return self.wal_bytes / self.wal_stats_age_s
        return None

    @property
    def requested_checkpoint_share(self) -> float | None:
        total = self.checkpoints_timed + self.checkpoints_requested
        return self.checkpoints_requested / total if total else None


@dataclass(frozen=True)
class Standby:
    pid: int
    application_name: str | None
    client_addr: str | None
    state: str | None
    sync_state: str | None
    write_lag_s: float | None
    flush_lag_s: float | None
    replay_lag_s: float | None
    replay_lag_bytes: float | None


@dataclass(frozen=True)
class Slot:
    slot_name: str
    slot_type: str
    plugin: str | None
    database: str | None
    active: bool
    active_pid: int | None
    wal_status: str | None
    safe_wal_size: float | None
    retained_bytes: float | None
    xmin_age: int | None
    catalog_xmin_age: int | None


@dataclass(frozen=True)
class TableVacuum:
    schema: str
    name: str
    heap_bytes: int
    n_live_tup: int
    n_dead_tup: int
    changes: int
    autovacuum_count: int
    since_vacuum_s: float | None
    scale_factor: float
    threshold: float
    own_scale_factor: bool

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def dead_share(self) -> float:
        total = self.n_live_tup + self.n_dead_tup
        return self.n_dead_tup / total if total else 0.0


@dataclass(frozen=True)
class Chain:
    """Sessions waiting, directly or through others, behind one session that waits for
    nobody (the head), with the locks involved."""

    head: Backend
    #: (waiting session, the lock it wants, the session it waits for directly)
    waiters: tuple[tuple[Backend, Lock | None, int], ...]
    #: the head's granted locks on the objects its waiters want
    held: tuple[Lock, ...]
    depth: int

    #: the object each waiter waits for, by pid: the table of a row it wants (a row lock
    #: is a wait for the holder's transaction, and the table is in the waiter's tuple lock)
    targets: tuple[tuple[int, str], ...] = ()

    @property
    def objects(self) -> list[str]:
        return sorted({what for _, what in self.targets})


def _target(pid: int, wanted: Lock | None, locks: list[Lock]) -> str:
    """What a waiting session waits for, as a person names it: the relation it wants, else
    (a wait for another transaction, which is how row locks wait) the table of the tuple lock
    or the row-level lock it holds."""
    if wanted is not None and wanted.relation:
        return wanted.relation
    own = [lock for lock in locks if lock.pid == pid and lock.granted and lock.relation]
    for locktype in ("tuple", "relation"):
        for lock in own:
            if lock.locktype == locktype and (
                locktype == "tuple" or lock.mode in ("RowExclusiveLock", "RowShareLock")
            ):
                return str(lock.relation)
    return wanted.what if wanted is not None else f"pid {pid}"


def blocking_chains(backends: list[Backend], locks: list[Lock]) -> list[Chain]:
    """Group the waiting sessions by the head of their chain: a session that blocks others
    and waits for nobody (or, in a cycle the deadlock detector has not broken yet, its lowest
    pid)."""
    by_pid = {b.pid: b for b in backends}
    blocked = {b.pid: b.blocked_by for b in backends if b.blocked_by}
    wanted = {lock.pid: lock for lock in locks if not lock.granted}

    def head_of(pid: int) -> tuple[int, int]:
        seen = [pid]
        current = pid
        while blocked.get(current):
            # follow the first blocker that is known; several blockers share one chain
            nxt = min(blocked[current])
            if nxt in seen:
                return min(seen[seen.index(nxt) :]), len(seen)
            seen.append(nxt)
            current = nxt
        return current, len(seen) - 1

    groups: dict[int, list[tuple[int, int]]] = {}
    for pid in blocked:
        top, depth = head_of(pid)
        if top != pid:
            groups.setdefault(top, []).append((pid, depth))
    chains: list[Chain] = []
    for head_pid, members in sorted(groups.items()):
        head = by_pid.get(head_pid)
        if head is None:
            continue  # ended between the two reads
        waiters = tuple(
            (by_pid[pid], wanted.get(pid), min(blocked[pid]))
            for pid, _ in sorted(members, key=lambda m: (m[1], m[0]))
            if pid in by_pid
        )
        targets = tuple((w.pid, _target(w.pid, lock, locks)) for w, lock, _ in waiters)
        objects = {what for _, what in targets} | {
            lock.what for _, lock, _ in waiters if lock is not None
        }
        held = tuple(
            lock for lock in locks if lock.pid == head_pid and lock.granted and lock.what in objects
        )
        chains.append(
            Chain(
                head=head,
                waiters=waiters,
                held=held,
                depth=max(d for _, d in members),
                targets=targets,
            )
        )
    return chains


@dataclass
class Activity:
    """The server's activity, each part read on first use."""

    context: DbContext

    @cached_property
    def backends(self) -> list[Backend]:
        rows = guarded("pg_stat_activity", _HINT, lambda: self.context.runner.fetch("activity"))
        return [_record(Backend, r) for r in rows]

    @cached_property
    def others(self) -> list[Backend]:
        """Every session but opscope's own."""
        return [b for b in self.backends if not b.own]

    @cached_property
    def clients(self) -> list[Backend]:
        """Client connections, opscope's own included: it takes a slot too."""
        return [b for b in self.backends if b.client]

    @cached_property
    def server(self) -> ServerHealth:
        # the summary sets the server version the versioned files are chosen by
        _ = self.context.summary
        rows = guarded(
            "server statistics", _HINT, lambda: self.context.runner.fetch("server_health")
        )
        return _record(ServerHealth, rows[0])

    @cached_property
    def locks(self) -> list[Lock]:
        pids = sorted({b.pid for b in self.backends if b.blocked_by} | self._blockers)
        if not pids:
            return []
        rows = guarded(
            "pg_locks", _HINT, lambda: self.context.runner.fetch("locks", {"pids": pids})
        )
        return [_record(Lock, r) for r in rows]

    @property
    def _blockers(self) -> set[int]:
        return {pid for b in self.backends for pid in b.blocked_by}

    @cached_property
    def chains(self) -> list[Chain]:
        return blocking_chains(self.others, self.locks)

    @cached_property
    def standbys(self) -> list[Standby]:
        rows = guarded(
            "pg_stat_replication", _HINT, lambda: self.context.runner.fetch("replication")
        )
        return [_record(Standby, r) for r in rows]

    @cached_property
    def slots(self) -> list[Slot]:
        rows = guarded(
            "pg_replication_slots", _HINT, lambda: self.context.runner.fetch("replication_slots")
        )
        return [_record(Slot, r) for r in rows]

    @cached_property
    def tables(self) -> list[TableVacuum]:
        rows = guarded(
            "pg_stat_user_tables", _HINT, lambda: self.context.runner.fetch("table_autovacuum")
        )
        return [_record(TableVacuum, r) for r in rows]


def activity_of(context: DbContext) -> Activity:
    """The run's one Activity, shared by every check that reads it."""
    found = context.shared.get("activity")
    if not isinstance(found, Activity):
        found = context.shared["activity"] = Activity(context)
    return found


def activity_summary(context: DbContext) -> dict[str, Any]:
    """The server's activity for the report's summary: connections by state, user and
    application against the slots, WAL rate, checkpoints, temp files, standbys and slots.
    What cannot be read (a permission, a timeout) is left out; the checks report why."""
    activity = activity_of(context)
    out: dict[str, Any] = {}
    try:
        server = activity.server
        clients = activity.clients
    except (CheckFailed, psycopg.Error):
        return out
    states = Counter(b.state or "unknown" for b in clients)
    out["connections"] = {
        "total": len(clients),
        "usable": server.usable_connections,
        "max_connections": server.max_connections,
        "by_state": dict(states.most_common()),
        "by_user": dict(Counter(b.username or "?" for b in clients).most_common(10)),
        "by_application": dict(
            Counter(b.application_name or "(none)" for b in clients).most_common(10)
        ),
    }
    rate = server.wal_bytes_per_s
    out["wal_bytes_per_s"] = None if rate is None else round(rate, 1)
    share = server.requested_checkpoint_share
    out["checkpoints"] = {
        "timed": server.checkpoints_timed,
        "requested": server.checkpoints_requested,
        "requested_share": None if share is None else round(share, 3),
        "write_ms": server.checkpoint_write_ms,
    }
    out["temp_files"] = server.temp_files
    out["temp_bytes"] = server.temp_bytes
    try:
        out["standbys"] = [
            {
                "name": s.application_name,
                "state": s.state,
                "replay_lag_s": s.replay_lag_s,
                "replay_lag_bytes": s.replay_lag_bytes,
            }
            for s in activity.standbys
        ]
        out["slots"] = [
            {
                "name": s.slot_name,
                "type": s.slot_type,
                "active": s.active,
                "retained_bytes": s.retained_bytes,
            }
            for s in activity.slots
        ]
    except (CheckFailed, psycopg.Error):
        pass
    return out

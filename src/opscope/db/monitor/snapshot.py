"""The PostgreSQL area's stored snapshot (`postgresql.stats/1`), and what history gives back
from it: statements and counters between two moments, index usage over the whole observed
window, growth of tables and indexes.

Each table and index carries its raw counters and the same counters accumulated since
opscope first saw it. The accumulated ones only grow: a counter that went down (a reset of
that object, a crash), a new statistics epoch (pg_stat_reset(), a failover to a standby:
another system timeline) counts its new value as what happened since. So the difference of
any two snapshots is what happened between them, even across resets and failovers, and
even after old snapshots were thinned out of the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opscope.db.catalog import Index, Table
from opscope.db.statements import Statement, StatementSnapshot, diff_snapshots
from opscope.monitor.collector import History

KIND = "postgresql.stats/1"

TABLE_COUNTERS = (
    "seq_scan",
    "seq_tup_read",
    "idx_scan",
    "idx_tup_fetch",
    "n_tup_ins",
    "n_tup_upd",
    "n_tup_del",
    "n_tup_hot_upd",
)
INDEX_COUNTERS = ("idx_scan", "idx_tup_read", "idx_tup_fetch")
#: the Statement fields, in the order a stored row keeps them
STATEMENT_FIELDS = tuple(Statement.__dataclass_fields__)


def epoch(server: Mapping[str, Any]) -> list[str | None]:
    """What must stay the same for counters to continue: the cluster, its timeline (a
    promoted standby starts a new one) and the database's last statistics reset."""
    reset = server.get("stats_reset")
    return [
        str(server.get("system_identifier")),
        str(server.get("timeline")),
        reset.isoformat() if isinstance(reset, datetime) else reset,
    ]


def accumulate(
    raw: Mapping[str, int], previous: Mapping[str, Any] | None, same_epoch: bool
) -> dict[str, int]:
    if previous is None:
        return dict.fromkeys(raw, 0)
    prev_raw, prev_acc = previous["raw"], previous["acc"]
    out: dict[str, int] = {}
    for name, value in raw.items():
        before = prev_raw.get(name)
        step = value - before if same_epoch and before is not None and value >= before else value
        out[name] = int(prev_acc.get(name, 0)) + int(step)
    return out


def build(
    server: Mapping[str, Any],
    tables: Iterable[Table],
    indexes: Iterable[Index],
    statements: StatementSnapshot | None,
    previous: Mapping[str, Any] | None,
    taken_at: datetime,
) -> dict[str, Any]:
    """The document of one collection, its accumulated counters carried on from `previous`
    (the document of the collection before, stored or not)."""
    now_epoch = epoch(server)
    same = previous is not None and previous.get("epoch") == now_epoch
    prev_tables: Mapping[str, Any] = previous["tables"] if previous else {}
    prev_indexes: Mapping[str, Any] = previous["indexes"] if previous else {}
    at = taken_at.isoformat()
    doc_tables: dict[str, Any] = {}
    for t in tables:
        raw = {c: int(getattr(t, c)) for c in TABLE_COUNTERS}
        prev = prev_tables.get(t.qualified)
        doc_tables[t.qualified] = {
            "raw": raw,
            "acc": accumulate(raw, prev, same),
            "since": prev["since"] if prev else at,
            "total_bytes": t.total_bytes,
            "heap_bytes": t.heap_bytes,
            "index_bytes": t.index_bytes,
            "toast_bytes": t.toast_bytes,
            "rows": t.rows,
            "n_live_tup": t.n_live_tup,
            "n_dead_tup": t.n_dead_tup,
            "partitioned": t.partitioned,
        }
    doc_indexes: dict[str, Any] = {}
    for i in indexes:
        raw = {c: int(getattr(i, c)) for c in INDEX_COUNTERS}
        prev = prev_indexes.get(i.qualified)
        doc_indexes[i.qualified] = {
            "table": i.table,
            "raw": raw,
            "acc": accumulate(raw, prev, same),
            "since": prev["since"] if prev else at,
            "bytes": i.bytes,
            "protected": i.protected,
            "partitioned": i.on_partitioned,
        }
    doc: dict[str, Any] = {
        "version": 1,
        "taken_at": at,
        "epoch": now_epoch,
        "server_version_num": server.get("server_version_num"),
        "tables": doc_tables,
        "indexes": doc_indexes,
        "statements": None,
    }
    if statements is not None:
        doc["statements"] = {
            "stats_reset": statements.stats_reset.isoformat() if statements.stats_reset else None,
            "dealloc": statements.dealloc,
            "rows": [[getattr(s, f) for f in STATEMENT_FIELDS] for s in statements.statements],
        }
    return doc


def _statement(row: Sequence[Any]) -> Statement:
    fields = dict(zip(STATEMENT_FIELDS, row, strict=True))
    # JSON holds the entry's stats_since (pg_stat_statements 1.11+) as text
    if isinstance(fields.get("since"), str):
        fields["since"] = datetime.fromisoformat(fields["since"])
    return Statement(**fields)


def statement_snapshot(doc: Mapping[str, Any]) -> StatementSnapshot | None:
    stored = doc.get("statements")
    if not stored:
        return None
    reset = stored.get("stats_reset")
    return StatementSnapshot(
        taken_at=datetime.fromisoformat(doc["taken_at"]).timestamp(),
        stats_reset=datetime.fromisoformat(reset) if reset else None,
        statements=tuple(_statement(row) for row in stored["rows"]),
        dealloc=stored.get("dealloc"),
    )


@dataclass(frozen=True)
class Usage:
    """An object's accumulated counters over a stored window."""

    counters: dict[str, int]
    #: when the window starts for this object: the window's start, or when it first
    #: appeared in it
    since: datetime


@dataclass(frozen=True)
class Growth:
    """How a table or index grew between two snapshots."""

    object: str
    kind: str
    since: datetime
    until: datetime
    bytes_before: int
    bytes_after: int
    rows_before: float | None
    rows_after: float | None

    @property
    def days(self) -> float:
        return (self.until - self.since).total_seconds() / 86400

    @property
    def bytes_per_day(self) -> float | None:
        return (self.bytes_after - self.bytes_before) / self.days if self.days > 0 else None

    @property
    def rows_per_day(self) -> float | None:
        if self.rows_before is None or self.rows_after is None or self.days <= 0:
            return None
        return (self.rows_after - self.rows_before) / self.days


@dataclass(frozen=True)
class StoredWindow:
    """Two stored snapshots of one target: what happened between them."""

    start: datetime
    end: datetime
    first: Mapping[str, Any]
    last: Mapping[str, Any]

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def statements(self) -> StatementSnapshot | None:
        before, after = statement_snapshot(self.first), statement_snapshot(self.last)
        if after is None:
            return None
        if before is None:
            return after
        return diff_snapshots(before, after)

    def _usage(self, section: str) -> dict[str, Usage]:
        out: dict[str, Usage] = {}
        first = self.first[section]
        for name, entry in self.last[section].items():
            old = first.get(name)
            if old is not None:
                counters = {c: int(v) - int(old["acc"].get(c, 0)) for c, v in entry["acc"].items()}
                since = self.start
            else:
                # appeared during the window: everything it accumulated happened in it
                counters = {c: int(v) for c, v in entry["acc"].items()}
                since = max(datetime.fromisoformat(entry["since"]), self.start)
            out[name] = Usage(counters, since)
        return out

    def tables(self) -> dict[str, Usage]:
        return self._usage("tables")

    def indexes(self) -> dict[str, Usage]:
        return self._usage("indexes")

    def growth(self) -> dict[str, Growth]:
        out: dict[str, Growth] = {}
        for section, kind, size in (
            ("tables", "table", "total_bytes"),
            ("indexes", "index", "bytes"),
        ):
            first = self.first[section]
            for name, entry in self.last[section].items():
                old = first.get(name)
                if old is None:
                    continue
                out[name] = Growth(
                    object=name,
                    kind=kind,
                    since=self.start,
                    until=self.end,
                    bytes_before=int(old[size]),
                    bytes_after=int(entry[size]),
                    rows_before=old.get("rows"),
                    rows_after=entry.get("rows"),
                )
        return out


class NoHistory(Exception):
    """The store holds too little of this target for what was asked; one line."""


def stored_window(
    history: History, target: str, since: datetime | None, until: datetime | None = None
) -> StoredWindow:
    """The stored snapshots of `target` that span [since, until] best: the latest at or
    before `since` (else the first after it) and the latest at or before `until`. Without
    `since`, the whole observed window. Raises NoHistory with fewer than two."""
    first = history.snapshot_before(target, KIND, since) if since is not None else None
    if first is None:
        first = history.snapshot_after(target, KIND, since)
    last = history.snapshot_before(target, KIND, until)
    if first is None or last is None or first.taken_at >= last.taken_at:
        held = "none" if last is None else f"one ({last.taken_at:%Y-%m-%d %H:%M} UTC)"
        if first is not None and last is not None and first.taken_at >= last.taken_at:
            held = f"none before {last.taken_at:%Y-%m-%d %H:%M} UTC in that window"
        raise NoHistory(
            f"the store holds {held} of the snapshots of {target} this needs two of: is "
            "opscope serve collecting it?"
        )
    return StoredWindow(first.taken_at, last.taken_at, first.data, last.data)


def growth_rates(
    history: History, target: str, since: datetime | None = None, until: datetime | None = None
) -> dict[str, Growth]:
    """Growth of every table and index of `target` over the stored window (by default all
    of it), by qualified name: what the partitioning advice reads."""
    return stored_window(history, target, since, until).growth()

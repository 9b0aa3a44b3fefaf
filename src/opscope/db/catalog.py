"""Typed records of a database's catalog and statistics, read with a handful of set-based
queries (one per kind of object, never one per table) and cached for all checks of a run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, TypeVar

import psycopg

from opscope.checks import CheckFailed
from opscope.db.connection import SqlRunner
from opscope.db.naming import IndexNames

T = TypeVar("T")


@dataclass(frozen=True)
class Summary:
    database: str
    server_version: str
    server_version_num: int
    database_bytes: int
    blks_hit: int
    blks_read: int
    xact_commit: int
    xact_rollback: int
    deadlocks: int
    temp_bytes: int
    stats_reset: datetime | None
    postmaster_start: datetime
    now: datetime
    connections: int
    max_connections: int
    reserved_connections: int
    xid_age: int
    autovacuum_freeze_max_age: int
    autovacuum: bool
    autovacuum_vacuum_threshold: int
    autovacuum_vacuum_scale_factor: float
    block_size: int
    has_pg_stat_statements: bool
    has_hypopg: bool
    has_pg_qualstats: bool
    shared_preload_libraries: str
    #: the schema pg_stat_statements was created in, None when it is not installed
    pg_stat_statements_schema: str | None = None
    #: opscope's session runs as a superuser: more power than it needs
    superuser: bool = False

    @property
    def cache_hit_ratio(self) -> float | None:
        total = self.blks_hit + self.blks_read
        return self.blks_hit / total if total else None

    @property
    def stats_since(self) -> datetime:
        """The oldest moment the cumulative statistics can be trusted to cover.

        Without an explicit reset, statistics survive clean restarts, so the server start is
        only a lower bound; it is the honest figure we can give."""
        return self.stats_reset or self.postmaster_start

    @property
    def stats_age_days(self) -> float:
        return (self.now - self.stats_since).total_seconds() / 86400


@dataclass(frozen=True)
class Table:
    oid: int
    schema: str
    name: str
    kind: str
    reltuples: float
    relpages: int
    #: sizes come from pg_class.relpages because another session holds the table exclusively
    size_estimated: bool
    heap_bytes: int
    total_bytes: int
    index_bytes: int
    toast_bytes: int
    seq_scan: int
    seq_tup_read: int
    idx_scan: int
    idx_tup_fetch: int
    n_tup_ins: int
    n_tup_upd: int
    n_tup_del: int
    n_tup_hot_upd: int
    n_live_tup: int
    n_dead_tup: int
    n_mod_since_analyze: int
    last_vacuum: datetime | None
    last_autovacuum: datetime | None
    last_analyze: datetime | None
    last_autoanalyze: datetime | None
    xid_age: int
    reloptions: tuple[str, ...]
    #: the partitioned table this one is a partition of
    parent_oid: int | None = None

    @property
    def partitioned(self) -> bool:
        """A partitioned table: no storage of its own, its partitions hold the rows."""
        return self.kind == "p"

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def rows(self) -> float:
        """Best row estimate: the planner's when the table was ever analyzed or vacuumed
        (reltuples is -1 before that), else the live-tuple counter."""
        return self.reltuples if self.reltuples >= 0 else float(self.n_live_tup)

    @property
    def last_analyzed(self) -> datetime | None:
        times = [t for t in (self.last_analyze, self.last_autoanalyze) if t is not None]
        return max(times) if times else None

    @property
    def last_vacuumed(self) -> datetime | None:
        times = [t for t in (self.last_vacuum, self.last_autovacuum) if t is not None]
        return max(times) if times else None

    def option(self, name: str) -> str | None:
        for item in self.reloptions:
            key, _, value = item.partition("=")
            if key == name:
                return value
        return None

    @property
    def autovacuum_disabled(self) -> bool:
        """autovacuum_enabled is set to false, spelled any way PostgreSQL accepts (off, no, 0,
        FALSE, f...): reloptions keep the text as written."""
        value = self.option("autovacuum_enabled")
        return value is not None and parse_bool(value) is False


_BOOL_WORDS = {"true": True, "false": False, "yes": True, "no": False, "on": True, "off": False}


def parse_bool(text: str) -> bool | None:
    """A boolean the way PostgreSQL's parse_bool reads it: true/false/yes/no/on/off/1/0, any
    case, surrounding blanks ignored, and unique prefixes ("t", "n", "of"); None otherwise."""
    value = text.strip().lower()
    if value in ("1", "0"):
        return value == "1"
    # "o" alone is ambiguous (on/off); every other non-empty prefix names one word
    matches = {v for word, v in _BOOL_WORDS.items() if value and word.startswith(value)}
    if len(matches) != 1:
        return None
    return matches.pop()


@dataclass(frozen=True)
class Index:
    oid: int
    table_oid: int
    schema: str
    table_name: str
    name: str
    method: str
    is_unique: bool
    is_primary: bool
    is_exclusion: bool
    is_valid: bool
    is_ready: bool
    is_replica_identity: bool
    key_count: int
    column_count: int
    attnums: tuple[int, ...]
    opclasses: tuple[int, ...]
    collations: tuple[int, ...]
    options: tuple[int, ...]
    #: False when another session held the table exclusively: column_defs are plain column
    #: names, predicate is '?' and definition is empty, so indexes cannot be compared
    details_known: bool
    column_defs: tuple[str, ...]
    expressions: str | None
    predicate: str | None
    definition: str
    constraint_name: str | None
    constraint_type: str | None
    bytes: int
    reltuples: float
    idx_scan: int
    idx_tup_read: int
    idx_tup_fetch: int
    fillfactor: int
    #: per index column, the table column's name, None for an expression
    attnames: tuple[str | None, ...] = ()
    #: per index column, the index's own column name (pg_stats keys expressions by it)
    index_attnames: tuple[str, ...] = ()
    #: a unique index declared NULLS NOT DISTINCT (PostgreSQL 15+)
    nulls_not_distinct: bool = False
    #: relkind of the table: 'p' for a partitioned table (then this is a partitioned index)
    table_kind: str = "r"
    #: the partitioned index this partition's index is attached to
    parent_index_oid: int | None = None

    @property
    def on_partitioned(self) -> bool:
        return self.table_kind == "p"

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def table(self) -> str:
        return f"{self.schema}.{self.table_name}"

    @property
    def key_defs(self) -> tuple[str, ...]:
        return self.column_defs[: self.key_count]

    @property
    def include_defs(self) -> tuple[str, ...]:
        return self.column_defs[self.key_count :]

    @property
    def backs_constraint(self) -> bool:
        return self.constraint_type is not None or self.is_primary or self.is_exclusion

    @property
    def protected(self) -> bool:
        """Indexes that must never be proposed for dropping: they enforce something."""
        return self.backs_constraint or self.is_unique or self.is_replica_identity

    def key_signature(self, upto: int | None = None) -> tuple[object, ...]:
        """What makes two index keys interchangeable: per key column, the column (or its
        expression), operator class, collation and sort options."""
        n = self.key_count if upto is None else upto
        return tuple(
            (self.column_defs[i], self.opclasses[i], self.collations[i], self.options[i])
            for i in range(n)
        )


@dataclass(frozen=True)
class ForeignKey:
    oid: int
    name: str
    schema: str
    table_name: str
    table_oid: int
    attnums: tuple[int, ...]
    columns: tuple[str, ...]
    referenced_schema: str
    referenced_table: str
    referenced_oid: int
    on_delete: str
    on_update: str

    @property
    def table(self) -> str:
        return f"{self.schema}.{self.table_name}"

    @property
    def referenced(self) -> str:
        return f"{self.referenced_schema}.{self.referenced_table}"


@dataclass(frozen=True)
class ColumnStat:
    schema: str
    relation: str
    column_name: str
    avg_width: int
    null_frac: float


def _record(cls: type[T], row: dict[str, Any]) -> T:
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in row.items()}
    return cls(**values)


@dataclass
class Catalog:
    """Lazy, cached view of one database; each property costs one query the first time."""

    runner: SqlRunner
    _errors: dict[str, str] = field(default_factory=dict)

    @cached_property
    def summary(self) -> Summary:
        rows = self.runner.fetch("summary")
        summary = _record(Summary, rows[0])
        self.runner.server_version_num = summary.server_version_num
        return summary

    @cached_property
    def tables(self) -> list[Table]:
        return [_record(Table, r) for r in self.runner.fetch("tables")]

    @cached_property
    def tables_by_oid(self) -> dict[int, Table]:
        return {t.oid: t for t in self.tables}

    @cached_property
    def partitions(self) -> dict[int, list[Table]]:
        """The direct partitions of each partitioned table."""
        out: dict[int, list[Table]] = {}
        for t in self.tables:
            if t.parent_oid is not None:
                out.setdefault(t.parent_oid, []).append(t)
        return out

    def leaf_partitions(self, oid: int) -> list[Table]:
        """The partitions holding the rows of a partitioned table, at any depth."""
        out: list[Table] = []
        for part in self.partitions.get(oid, []):
            out.extend(self.leaf_partitions(part.oid) if part.partitioned else [part])
        return out

    @cached_property
    def indexes(self) -> list[Index]:
        return [_record(Index, r) for r in self.runner.fetch("indexes")]

    @cached_property
    def indexes_by_table(self) -> dict[int, list[Index]]:
        out: dict[int, list[Index]] = {}
        for idx in self.indexes:
            out.setdefault(idx.table_oid, []).append(idx)
        return out

    @cached_property
    def index_partitions(self) -> dict[int, list[Index]]:
        """The partitions' indexes attached to each partitioned index."""
        out: dict[int, list[Index]] = {}
        for idx in self.indexes:
            if idx.parent_index_oid is not None:
                out.setdefault(idx.parent_index_oid, []).append(idx)
        return out

    def index_scans(self, idx: Index) -> int:
        """Scans of an index; for a partitioned index, of its partitions' indexes (scans are
        counted only there)."""
        if not idx.on_partitioned:
            return idx.idx_scan
        return sum(self.index_scans(i) for i in self.index_partitions.get(idx.oid, []))

    @cached_property
    def foreign_keys(self) -> list[ForeignKey]:
        return [_record(ForeignKey, r) for r in self.runner.fetch("foreign_keys")]

    @cached_property
    def relation_names(self) -> frozenset[tuple[str, str]]:
        """(schema, name) of every relation of the user schemas, whatever its kind."""
        rows = self.runner.fetch("relation_names", {"schema": None})
        return frozenset((r["schema"], r["name"]) for r in rows)

    @cached_property
    def index_names(self) -> IndexNames:
        """The names this run's proposals take: every check that proposes an index asks here,
        so no two proposals (nor a proposal and a relation) share a name."""
        return IndexNames(self.relation_names)

    @cached_property
    def column_stats(self) -> dict[tuple[str, str], dict[str, ColumnStat]]:
        out: dict[tuple[str, str], dict[str, ColumnStat]] = {}
        for row in self.runner.fetch("column_stats"):
            stat = _record(ColumnStat, row)
            out.setdefault((stat.schema, stat.relation), {})[stat.column_name] = stat
        return out


def guarded(what: str, hint: str, load: Callable[[], T]) -> T:
    """Run a catalog read, turning a server-side refusal into a one-line CheckFailed."""
    try:
        return load()
    except psycopg.errors.InsufficientPrivilege as exc:
        raise CheckFailed(
            f"{what}: permission denied ({exc.diag.message_primary}); {hint}"
        ) from None
    except psycopg.errors.QueryCanceled:
        raise CheckFailed(
            f"{what}: cancelled by statement_timeout; raise session.statement_timeout_ms"
        ) from None

"""The PostgreSQL collector of `opscope serve`: one safe session per run, a handful of
set-based queries (never one per table), families for /metrics and, every
`postgresql.monitor.snapshot_interval_s`, a snapshot for the store."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from prometheus_client.metrics_core import GaugeMetricFamily

from opscope.checks import CheckFailed
from opscope.config import Config
from opscope.db.bloat import btree_estimate, heap_estimate
from opscope.db.catalog import Catalog, ColumnStat, Index, Table
from opscope.db.checks.indexes import IndexBloat
from opscope.db.checks.tables import widths_of
from opscope.db.connection import (
    ConnectionFactory,
    SqlRunner,
    TargetConnectionError,
    connect,
    raise_if_lost,
    redact_secret,
)
from opscope.db.context import KIND
from opscope.db.monitor import metrics, snapshot
from opscope.db.settings import settings_for
from opscope.db.statements import read_statements
from opscope.errors import first_line
from opscope.monitor.collector import CollectContext, Collection, CollectorError


def _down(target: str) -> Collection:
    up = GaugeMetricFamily(
        "pg_up", "1 when the database answered the collection.", labels=["target"]
    )
    up.add_metric([target], 0.0)
    return Collection(metrics=[up])


def table_bloat(
    tables: list[Table], stats: Mapping[tuple[str, str], Mapping[str, ColumnStat]], block: int
) -> dict[int, int]:
    """Estimated wasted heap bytes by table oid, as the table_bloat check estimates them."""
    out: dict[int, int] = {}
    for t in tables:
        if t.partitioned or not t.heap_bytes:
            continue
        tuples = t.n_live_tup + t.n_dead_tup
        dead_ratio = t.n_dead_tup / tuples if tuples else 0.0
        widths = widths_of(stats, t)
        fillfactor = int(t.option("fillfactor") or 100)
        est_ratio = (
            heap_estimate(t.heap_bytes, float(t.n_live_tup), widths, block, fillfactor).bloat_ratio
            if widths and t.n_live_tup
            else 0.0
        )
        out[t.oid] = int(max(dead_ratio, est_ratio) * t.heap_bytes)
    return out


def index_bloat(
    indexes: list[Index],
    tables: Mapping[int, Table],
    stats: Mapping[tuple[str, str], Mapping[str, ColumnStat]],
    block: int,
) -> dict[int, int]:
    """Estimated bloat bytes of each btree index by oid, as the index_bloat check does."""
    out: dict[int, int] = {}
    for idx in indexes:
        table = tables.get(idx.table_oid)
        if idx.method != "btree" or table is None or not idx.details_known or not idx.bytes:
            continue
        widths = IndexBloat.key_widths(idx, stats)
        if widths is None:
            continue
        est = btree_estimate(idx.bytes, table.rows, widths, block, idx.fillfactor or 90)
        out[idx.oid] = est.bloat_bytes
    return out


@dataclass
class PostgresCollector:
    config: Config
    target: str
    dsn: str
    connect: ConnectionFactory = connect
    kind: str = KIND
    #: set by the service from serve.* before the first run
    interval_s: float = 60.0
    timeout_s: float = 30.0
    name: str = field(init=False)
    #: the document of the previous collection (stored or not): accumulation goes on from it
    _previous: Mapping[str, Any] | None = field(default=None, init=False, repr=False)
    _loaded: bool = field(default=False, init=False, repr=False)
    _last_stored: datetime | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.name = f"{KIND}/{self.target}"

    def collect(self, context: CollectContext) -> Collection:
        settings = settings_for(self.config, self.target)
        started = time.perf_counter()
        try:
            conn = self.connect(self.dsn, settings.session)
        except TargetConnectionError as exc:
            raise CollectorError(str(exc), _down(self.target)) from None
        try:
            runner = SqlRunner(conn, server_version_num=conn.info.server_version)
            server = runner.fetch("monitor_server")[0]
            catalog = Catalog(runner)
            tables, indexes = catalog.tables, catalog.indexes
            stats = catalog.column_stats
            io = {
                (r["what"], int(r["oid"])): r["counters"]
                for r in runner.fetch("monitor_relation_io")
            }
            try:
                statements = read_statements(runner)
            except CheckFailed:
                statements = None  # no pg_stat_statements here: the rest still counts
        except psycopg.Error as exc:
            try:
                raise_if_lost(conn, self.dsn)
            except TargetConnectionError as lost:
                raise CollectorError(str(lost), _down(self.target)) from None
            raise CollectorError(
                redact_secret(first_line(exc), self.dsn), _down(self.target)
            ) from None
        finally:
            conn.close()
        taken_at: datetime = server["now"]
        if not self._loaded and context.history is not None:
            latest = context.history.latest_snapshot(self.target, snapshot.KIND)
            if latest is not None:
                self._previous, self._last_stored = latest[1], latest[0]
        self._loaded = True
        doc = snapshot.build(server, tables, indexes, statements, self._previous, taken_at)
        self._previous = doc
        interval = settings.monitor.snapshot_interval_s
        keep = (
            self._last_stored is None or (taken_at - self._last_stored).total_seconds() >= interval
        )
        if keep:
            self._last_stored = taken_at
        block = next(
            (int(s["setting"]) for s in server.get("settings") or [] if s["name"] == "block_size"),
            8192,
        )
        fam = metrics.Families(self.target)
        metrics.server_families(fam, server)
        table_io = {oid: c for (what, oid), c in io.items() if what == "table"}
        index_io = {oid: c for (what, oid), c in io.items() if what == "index"}
        metrics.table_families(
            fam, str(server["database"]), tables, table_io, table_bloat(tables, stats, block)
        )
        observed = {name: int(entry["acc"]["idx_scan"]) for name, entry in doc["indexes"].items()}
        metrics.index_families(
            fam,
            indexes,
            index_io,
            observed,
            index_bloat(indexes, catalog.tables_by_oid, stats, block),
        )
        if statements is not None:
            monitor = settings.monitor
            metrics.statement_families(
                fam, statements, monitor.top_statements, monitor.query_label_chars
            )
        metrics.collection_families(fam, time.perf_counter() - started, runner.queries_sent)
        return Collection(
            metrics=fam.stored,
            exposed=fam.exposed,
            snapshots={snapshot.KIND: doc} if keep else {},
            taken_at=taken_at,
        )

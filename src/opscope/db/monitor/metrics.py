"""One database collection as Prometheus metric families.

The server-wide and per-table families cover what postgres_exporter's default collectors
expose, with the same meaning and labels, named the Prometheus way: counters end in
`_total`, times are seconds and sizes bytes (docs/serve.md maps every name). opscope's own
families (`opscope_pg_*`) add the top statements, index usage, bloat estimates and the
counters accumulated across resets. Every sample carries the `target` label: the
database's name in opscope.yaml.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from opscope.db.catalog import Index, Table
from opscope.db.statements import StatementSnapshot, is_maintenance
from opscope.redact import redact
from opscope.sqltext import short_query

ACTIVITY_STATES = (
    "active",
    "idle",
    "idle in transaction",
    "idle in transaction (aborted)",
    "fastpath function call",
    "disabled",
)
LOCK_MODES = (
    "accesssharelock",
    "rowsharelock",
    "rowexclusivelock",
    "shareupdateexclusivelock",
    "sharelock",
    "sharerowexclusivelock",
    "exclusivelock",
    "accessexclusivelock",
    "sireadlock",
)

#: pg_stat_database columns: (column, metric suffix, kind, factor)
_DATABASE_COLUMNS = (
    ("numbackends", "numbackends", "gauge", 1.0),
    ("xact_commit", "xact_commit", "counter", 1.0),
    ("xact_rollback", "xact_rollback", "counter", 1.0),
    ("blks_read", "blks_read", "counter", 1.0),
    ("blks_hit", "blks_hit", "counter", 1.0),
    ("tup_returned", "tup_returned", "counter", 1.0),
    ("tup_fetched", "tup_fetched", "counter", 1.0),
    ("tup_inserted", "tup_inserted", "counter", 1.0),
    ("tup_updated", "tup_updated", "counter", 1.0),
    ("tup_deleted", "tup_deleted", "counter", 1.0),
    ("conflicts", "conflicts", "counter", 1.0),
    ("temp_files", "temp_files", "counter", 1.0),
    ("temp_bytes", "temp_bytes", "counter", 1.0),
    ("deadlocks", "deadlocks", "counter", 1.0),
    ("checksum_failures", "checksum_failures", "counter", 1.0),
    ("blk_read_time", "blk_read_time_seconds", "counter", 0.001),
    ("blk_write_time", "blk_write_time_seconds", "counter", 0.001),
    ("session_time", "session_time_seconds", "counter", 0.001),
    ("active_time", "active_time_seconds", "counter", 0.001),
    ("idle_in_transaction_time", "idle_in_transaction_time_seconds", "counter", 0.001),
    ("sessions", "sessions", "counter", 1.0),
    ("sessions_abandoned", "sessions_abandoned", "counter", 1.0),
    ("sessions_fatal", "sessions_fatal", "counter", 1.0),
    ("sessions_killed", "sessions_killed", "counter", 1.0),
)
_CONFLICTS = (
    "confl_tablespace",
    "confl_lock",
    "confl_snapshot",
    "confl_bufferpin",
    "confl_deadlock",
)
#: pg_stat_bgwriter (and, from PostgreSQL 17, pg_stat_checkpointer under its old names)
_BGWRITER = (
    ("checkpoints_timed", "checkpoints_timed", 1.0),
    ("checkpoints_req", "checkpoints_req", 1.0),
    ("checkpoint_write_time", "checkpoint_write_time_seconds", 0.001),
    ("checkpoint_sync_time", "checkpoint_sync_time_seconds", 0.001),
    ("buffers_checkpoint", "buffers_checkpoint", 1.0),
    ("buffers_clean", "buffers_clean", 1.0),
    ("maxwritten_clean", "maxwritten_clean", 1.0),
    ("buffers_backend", "buffers_backend", 1.0),
    ("buffers_backend_fsync", "buffers_backend_fsync", 1.0),
    ("buffers_alloc", "buffers_alloc", 1.0),
)
_CHECKPOINTER_AS_BGWRITER = {
    "num_timed": "checkpoints_timed",
    "num_requested": "checkpoints_req",
    "write_time": "checkpoint_write_time",
    "sync_time": "checkpoint_sync_time",
    "buffers_written": "buffers_checkpoint",
}
_TABLE_COUNTERS = (
    "seq_scan",
    "seq_tup_read",
    "idx_scan",
    "idx_tup_fetch",
    "n_tup_ins",
    "n_tup_upd",
    "n_tup_del",
    "n_tup_hot_upd",
)
_TABLE_IO = (
    ("heap_blks_read", "heap_blocks_read"),
    ("heap_blks_hit", "heap_blocks_hit"),
    ("idx_blks_read", "idx_blocks_read"),
    ("idx_blks_hit", "idx_blocks_hit"),
    ("toast_blks_read", "toast_blocks_read"),
    ("toast_blks_hit", "toast_blocks_hit"),
    ("tidx_blks_read", "tidx_blocks_read"),
    ("tidx_blks_hit", "tidx_blocks_hit"),
)
_MAINTENANCE_COUNTS = ("vacuum_count", "autovacuum_count", "analyze_count", "autoanalyze_count")
_SIZE_UNIT = re.compile(r"^(\d*)(B|kB|MB|GB|TB)$")
_SIZE_FACTOR = {"B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
_TIME_FACTOR = {"us": 1e-6, "ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _timestamp(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    return None


def setting_metric(
    name: str, setting: str, unit: str | None, vartype: str
) -> tuple[str, float] | None:
    """(metric name, value) of a numeric or boolean setting, converted as postgres_exporter
    does: times to seconds (`_seconds`), sizes to bytes (`_bytes`), on/off to 1/0."""
    metric = "pg_settings_" + re.sub(r"[^a-zA-Z0-9_]", "_", name)
    if vartype == "bool":
        return metric, 1.0 if setting == "on" else 0.0
    value = _num(setting)
    if value is None:
        return None
    if unit:
        size = _SIZE_UNIT.match(unit)
        if size:
            # -1 (unlimited, disabled) is kept as it is, not scaled
            scale = int(size.group(1) or 1) * _SIZE_FACTOR[size.group(2)]
            return metric + "_bytes", value * scale if value >= 0 else value
        if unit in _TIME_FACTOR:
            return metric + "_seconds", value * _TIME_FACTOR[unit] if value >= 0 else value
    return metric, value


@dataclass
class Families:
    """The families of one collection: `stored` become series in the store, `exposed` are
    only on /metrics (per-object statistics, which the snapshot keeps instead)."""

    target: str
    stored: list[Metric] = field(default_factory=list)
    exposed: list[Metric] = field(default_factory=list)

    def gauge(
        self, name: str, doc: str, labels: Sequence[str], *, store: bool = True
    ) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, doc, labels=["target", *labels])
        (self.stored if store else self.exposed).append(family)
        return family

    def counter(
        self, name: str, doc: str, labels: Sequence[str], *, store: bool = True
    ) -> CounterMetricFamily:
        family = CounterMetricFamily(name, doc, labels=["target", *labels])
        (self.stored if store else self.exposed).append(family)
        return family


def server_families(fam: Families, server: Mapping[str, Any]) -> None:
    t = fam.target
    fam.gauge("pg_up", "1 when the database answered the collection.", []).add_metric([t], 1.0)
    version = str(server["server_version"])
    fam.gauge(
        "pg_static", "The server's version (value 1).", ["version", "short_version"]
    ).add_metric([t, version, version.split(" ")[0]], 1.0)
    fam.gauge(
        "pg_postmaster_start_time_seconds", "When the server started (Unix time).", []
    ).add_metric([t], server["postmaster_start"].timestamp())
    fam.gauge("pg_replication_is_replica", "1 when the server is a standby.", []).add_metric(
        [t], 1.0 if server["in_recovery"] else 0.0
    )
    fam.gauge(
        "pg_replication_lag_seconds",
        "On a standby, seconds since the last replayed transaction; 0 on a primary.",
        [],
    ).add_metric([t], float(server["replication_lag_s"] or 0.0))
    _databases(fam, server.get("databases") or [])
    _activity(fam, server)
    _locks(fam, server)
    _bgwriter(fam, server.get("bgwriter") or {}, server.get("checkpointer"))
    _archiver(fam, server.get("archiver") or {})
    _replication(fam, server.get("replication") or [], server.get("slots") or [])
    _settings(fam, server.get("settings") or [])


def _databases(fam: Families, rows: Iterable[Mapping[str, Any]]) -> None:
    labels = ["datid", "datname"]
    made: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}
    for column, suffix, kind, _ in _DATABASE_COLUMNS:
        name = f"pg_stat_database_{suffix}"
        doc = f"pg_stat_database.{column}" + (" (in seconds)" if suffix.endswith("seconds") else "")
        made[column] = (fam.gauge if kind == "gauge" else fam.counter)(name, doc, labels)
    reset = fam.gauge(
        "pg_stat_database_stats_reset_timestamp_seconds",
        "When the database's statistics were last reset (Unix time).",
        labels,
    )
    conflicts = {
        c: fam.counter(f"pg_stat_database_conflicts_{c}", f"pg_stat_database_conflicts.{c}", labels)
        for c in _CONFLICTS
    }
    size = fam.gauge("pg_database_size_bytes", "Disk space the database uses.", ["datname"])
    for row in rows:
        values = [fam.target, str(row.get("datid", "")), str(row.get("datname") or "")]
        for column, _suffix, _kind, factor in _DATABASE_COLUMNS:
            value = _num(row.get(column))
            if value is not None:
                made[column].add_metric(values, value * factor)
        stamp = _timestamp(row.get("stats_reset"))
        if stamp is not None:
            reset.add_metric(values, stamp)
        detail = row.get("conflicts_detail") or {}
        for c, family in conflicts.items():
            value = _num(detail.get(c))
            if value is not None:
                family.add_metric(values, value)
        if row.get("datname") is not None and row.get("size_bytes") is not None:
            size.add_metric([fam.target, str(row["datname"])], float(row["size_bytes"]))


def _activity(fam: Families, server: Mapping[str, Any]) -> None:
    count = fam.gauge(
        "pg_stat_activity_count", "Client sessions in this state.", ["datname", "state"]
    )
    longest = fam.gauge(
        "pg_stat_activity_max_tx_duration_seconds",
        "The oldest open transaction of the sessions in this state.",
        ["datname", "state"],
    )
    waiting = fam.gauge(
        "opscope_pg_sessions_waiting_for_lock",
        "Client sessions waiting for a lock.",
        ["datname"],
    )
    seen: dict[tuple[str, str], tuple[float, float]] = {}
    waits: dict[str, float] = {}
    for row in server.get("activity") or []:
        key = (str(row["datname"]), str(row.get("state") or "unknown"))
        seen[key] = (float(row["count"]), float(row["max_tx_duration"] or 0.0))
        waits[key[0]] = waits.get(key[0], 0.0) + float(row.get("waiting") or 0)
    databases = sorted({*(server.get("database_names") or []), *(k[0] for k in seen)})
    states = [*ACTIVITY_STATES, *sorted({s for _, s in seen} - set(ACTIVITY_STATES))]
    for datname in databases:
        for state in states:
            n, tx = seen.get((datname, state), (0.0, 0.0))
            count.add_metric([fam.target, datname, state], n)
            longest.add_metric([fam.target, datname, state], tx)
        waiting.add_metric([fam.target, datname], waits.get(datname, 0.0))


def _locks(fam: Families, server: Mapping[str, Any]) -> None:
    family = fam.gauge("pg_locks_count", "Locks held or awaited, by mode.", ["datname", "mode"])
    counts: dict[tuple[str, str], float] = {}
    for row in server.get("locks") or []:
        key = (str(row["datname"]), str(row["mode"]).lower())
        counts[key] = counts.get(key, 0.0) + float(row["count"])
    databases = sorted({*(server.get("database_names") or []), *(k[0] for k in counts)})
    modes = [*LOCK_MODES, *sorted({m for _, m in counts} - set(LOCK_MODES))]
    for datname in databases:
        for mode in modes:
            family.add_metric([fam.target, datname, mode], counts.get((datname, mode), 0.0))


def _bgwriter(
    fam: Families, bgwriter: Mapping[str, Any], checkpointer: Mapping[str, Any] | None
) -> None:
    values = dict(bgwriter)
    for new, old in _CHECKPOINTER_AS_BGWRITER.items():
        if checkpointer and new in checkpointer:
            values[old] = checkpointer[new]
    for column, suffix, factor in _BGWRITER:
        value = _num(values.get(column))
        if value is not None:
            fam.counter(f"pg_stat_bgwriter_{suffix}", f"pg_stat_bgwriter.{column}", []).add_metric(
                [fam.target], value * factor
            )
    stamp = _timestamp(values.get("stats_reset"))
    if stamp is not None:
        fam.gauge(
            "pg_stat_bgwriter_stats_reset_timestamp_seconds",
            "When the background writer's statistics were last reset (Unix time).",
            [],
        ).add_metric([fam.target], stamp)


def _archiver(fam: Families, archiver: Mapping[str, Any]) -> None:
    for column, name in (("archived_count", "archived"), ("failed_count", "failed")):
        value = _num(archiver.get(column))
        if value is not None:
            fam.counter(
                f"pg_stat_archiver_{name}", f"WAL files {name} (pg_stat_archiver.{column}).", []
            ).add_metric([fam.target], value)
    age = _num(archiver.get("last_archive_age"))
    if age is not None:
        fam.gauge(
            "pg_stat_archiver_last_archive_age_seconds",
            "Seconds since the last WAL file was archived.",
            [],
        ).add_metric([fam.target], age)


def _replication(
    fam: Families, replicas: Iterable[Mapping[str, Any]], slots: Iterable[Mapping[str, Any]]
) -> None:
    labels = ["application_name", "client_addr", "state", "slot_name"]
    current = fam.gauge(
        "pg_stat_replication_pg_current_wal_lsn_bytes",
        "The primary's WAL position, as bytes since 0/0.",
        labels,
    )
    lag = fam.gauge(
        "pg_stat_replication_pg_wal_lsn_diff_bytes",
        "Bytes of WAL the standby has not replayed yet.",
        labels,
    )
    for row in replicas:
        values = [fam.target, *(str(row.get(k) or "") for k in labels)]
        if row.get("current_wal_lsn_bytes") is not None:
            current.add_metric(values, float(row["current_wal_lsn_bytes"]))
        if row.get("wal_lsn_diff") is not None:
            lag.add_metric(values, float(row["wal_lsn_diff"]))
    active = fam.gauge(
        "pg_replication_slots_active", "1 when the slot is in use.", ["slot_name", "database"]
    )
    behind = fam.gauge(
        "pg_replication_slots_pg_wal_lsn_diff_bytes",
        "Bytes of WAL the slot holds back.",
        ["slot_name", "database"],
    )
    for row in slots:
        values = [fam.target, str(row.get("slot_name") or ""), str(row.get("database") or "")]
        active.add_metric(values, 1.0 if row.get("active") else 0.0)
        if row.get("wal_lsn_diff") is not None:
            behind.add_metric(values, float(row["wal_lsn_diff"]))


def _settings(fam: Families, settings: Iterable[Mapping[str, Any]]) -> None:
    for row in settings:
        converted = setting_metric(
            str(row["name"]), str(row["setting"]), row.get("unit"), str(row["vartype"])
        )
        if converted is None:
            continue
        name, value = converted
        fam.gauge(name, f"Server setting {row['name']}.", [], store=False).add_metric(
            [fam.target], value
        )


def table_families(
    fam: Families,
    datname: str,
    tables: Sequence[Table],
    io: Mapping[int, Mapping[str, Any]],
    bloat: Mapping[int, int],
) -> None:
    labels = ["datname", "schemaname", "relname"]

    def counter(name: str, doc: str) -> CounterMetricFamily:
        return fam.counter(name, doc, labels, store=False)

    def gauge(name: str, doc: str) -> GaugeMetricFamily:
        return fam.gauge(name, doc, labels, store=False)

    counters = {
        c: counter(f"pg_stat_user_tables_{c}", f"pg_stat_user_tables.{c}") for c in _TABLE_COUNTERS
    }
    maintenance = {
        c: counter(f"pg_stat_user_tables_{c}", f"pg_stat_user_tables.{c}")
        for c in _MAINTENANCE_COUNTS
    }
    live = gauge("pg_stat_user_tables_n_live_tup", "Estimated live rows.")
    dead = gauge("pg_stat_user_tables_n_dead_tup", "Estimated dead rows.")
    modified = gauge(
        "pg_stat_user_tables_n_mod_since_analyze", "Rows changed since the last analyze."
    )
    times = {
        c: gauge(
            f"pg_stat_user_tables_{c}_timestamp_seconds", f"pg_stat_user_tables.{c} (Unix time)."
        )
        for c in ("last_vacuum", "last_autovacuum", "last_analyze", "last_autoanalyze")
    }
    table_size = gauge(
        "pg_stat_user_tables_table_size_bytes", "The table with its TOAST, without indexes."
    )
    index_size = gauge("pg_stat_user_tables_index_size_bytes", "The table's indexes.")
    blocks = {
        column: counter(f"pg_statio_user_tables_{name}", f"pg_statio_user_tables.{column}")
        for column, name in _TABLE_IO
    }
    wasted = gauge(
        "opscope_pg_table_bloat_bytes",
        "Estimated space the table's heap holds beyond what its live rows need.",
    )
    for t in tables:
        if t.partitioned:
            continue
        values = [fam.target, datname, t.schema, t.name]
        for c, family in counters.items():
            family.add_metric(values, float(getattr(t, c)))
        live.add_metric(values, float(t.n_live_tup))
        dead.add_metric(values, float(t.n_dead_tup))
        modified.add_metric(values, float(t.n_mod_since_analyze))
        for c, stamp_family in times.items():
            stamp = getattr(t, c)
            stamp_family.add_metric(values, stamp.timestamp() if stamp else 0.0)
        table_size.add_metric(values, float(t.heap_bytes + t.toast_bytes))
        index_size.add_metric(values, float(t.index_bytes))
        extra = io.get(t.oid, {})
        for c, family in maintenance.items():
            if extra.get(c) is not None:
                family.add_metric(values, float(extra[c]))
        for column, family in blocks.items():
            if extra.get(column) is not None:
                family.add_metric(values, float(extra[column]))
        if t.oid in bloat:
            wasted.add_metric(values, float(bloat[t.oid]))


def index_families(
    fam: Families,
    indexes: Sequence[Index],
    io: Mapping[int, Mapping[str, Any]],
    observed: Mapping[str, int],
    bloat: Mapping[int, int],
) -> None:
    labels = ["schemaname", "relname", "indexrelname"]

    def counter(name: str, doc: str) -> CounterMetricFamily:
        return fam.counter(name, doc, labels, store=False)

    def gauge(name: str, doc: str) -> GaugeMetricFamily:
        return fam.gauge(name, doc, labels, store=False)

    scans = counter("opscope_pg_index_scans", "Index scans (pg_stat_user_indexes.idx_scan).")
    read = counter("opscope_pg_index_tuples_read", "Index entries returned by scans of it.")
    fetched = counter("opscope_pg_index_tuples_fetched", "Live rows fetched through it.")
    size = gauge("opscope_pg_index_size_bytes", "The index's size.")
    seen = counter(
        "opscope_pg_index_observed_scans",
        "Scans since opscope first saw the index, carried across statistics resets and "
        "failovers (0 over a long window: the index is unused).",
    )
    blocks_read = counter("opscope_pg_index_blocks_read", "Index blocks read from disk.")
    blocks_hit = counter("opscope_pg_index_blocks_hit", "Index blocks found in shared buffers.")
    wasted = gauge(
        "opscope_pg_index_bloat_bytes", "Estimated space beyond what a fresh btree needs."
    )
    unique = gauge(
        "opscope_pg_index_enforces_constraint",
        "1 when the index enforces something (primary key, unique, exclusion, replica "
        "identity): never a candidate for dropping.",
    )
    for i in indexes:
        if i.on_partitioned:
            continue
        values = [fam.target, i.schema, i.table_name, i.name]
        scans.add_metric(values, float(i.idx_scan))
        read.add_metric(values, float(i.idx_tup_read))
        fetched.add_metric(values, float(i.idx_tup_fetch))
        size.add_metric(values, float(i.bytes))
        unique.add_metric(values, 1.0 if i.protected else 0.0)
        if i.qualified in observed:
            seen.add_metric(values, float(observed[i.qualified]))
        extra = io.get(i.oid, {})
        if extra.get("idx_blks_read") is not None:
            blocks_read.add_metric(values, float(extra["idx_blks_read"]))
            blocks_hit.add_metric(values, float(extra["idx_blks_hit"]))
        if i.oid in bloat:
            wasted.add_metric(values, float(bloat[i.oid]))


def statement_families(fam: Families, snap: StatementSnapshot, top: int, label_chars: int) -> None:
    """The `top` top-level statements by total time, one series each, and every statement
    summed: the labels stay bounded whatever pg_stat_statements holds."""
    labels = ["queryid", "user", "query"]
    seconds = fam.counter(
        "opscope_pg_statement_seconds", "Execution time of the statement.", labels
    )
    calls = fam.counter("opscope_pg_statement_calls", "Calls of the statement.", labels)
    rows = fam.counter(
        "opscope_pg_statement_rows", "Rows the statement returned or changed.", labels
    )
    read = fam.counter(
        "opscope_pg_statement_shared_blocks_read", "Shared blocks it read from disk.", labels
    )
    hit = fam.counter(
        "opscope_pg_statement_shared_blocks_hit", "Shared blocks it found in the cache.", labels
    )
    temp = fam.counter(
        "opscope_pg_statement_temp_blocks_written", "Temporary blocks it wrote (spills).", labels
    )
    mean = fam.gauge(
        "opscope_pg_statement_mean_seconds", "Mean execution time since the last reset.", labels
    )
    toplevel = [s for s in snap.statements if s.toplevel]
    ranked = sorted(
        (s for s in toplevel if not is_maintenance(s.query)), key=lambda s: -s.total_exec_time
    )
    for s in ranked[:top]:
        values = [
            fam.target,
            str(s.queryid),
            s.username or str(s.userid),
            short_query(redact(s.query), label_chars),
        ]
        seconds.add_metric(values, s.total_exec_time / 1000)
        calls.add_metric(values, float(s.calls))
        rows.add_metric(values, float(s.rows))
        read.add_metric(values, float(s.shared_blks_read))
        hit.add_metric(values, float(s.shared_blks_hit))
        temp.add_metric(values, float(s.temp_blks_written))
        mean.add_metric(values, s.mean_exec_time / 1000)
    fam.counter(
        "opscope_pg_statements_seconds", "Execution time of every top-level statement.", []
    ).add_metric([fam.target], sum(s.total_exec_time for s in toplevel) / 1000)
    fam.counter(
        "opscope_pg_statements_calls", "Calls of every top-level statement.", []
    ).add_metric([fam.target], float(sum(s.calls for s in toplevel)))
    fam.gauge(
        "opscope_pg_statements_tracked", "Entries pg_stat_statements holds for this database.", []
    ).add_metric([fam.target], float(len(snap.statements)))
    if snap.dealloc is not None:
        fam.counter(
            "opscope_pg_statements_evicted",
            "Times pg_stat_statements evicted entries for room (pg_stat_statements_info.dealloc).",
            [],
        ).add_metric([fam.target], float(snap.dealloc))


def collection_families(fam: Families, seconds: float, queries: int) -> None:
    fam.gauge("opscope_pg_collection_seconds", "How long the last collection took.", []).add_metric(
        [fam.target], seconds
    )
    fam.gauge("opscope_pg_collection_queries", "Queries the last collection sent.", []).add_metric(
        [fam.target], float(queries)
    )

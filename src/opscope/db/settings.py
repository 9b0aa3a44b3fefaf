"""The PostgreSQL area's part of opscope.yaml: `databases` (the targets) and `postgresql`
(the settings every database shares, each overridable per database).

```yaml
databases:
  warehouse:
    dsn: postgresql://...
    thresholds: {slow_query_ms: 250}   # only the keys given replace `postgresql.thresholds`
postgresql:
  session: {...}
  thresholds: {...}
  plans: {...}
  advisor: {...}
  logs: {...}
```
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator

from opscope.config import Config, ConfigSection
from opscope.db.health_settings import HealthSettings
from opscope.db.plans.signature import parse_function_entry


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SessionSettings(_Frozen):
    """How opscope behaves on every session it opens on a watched database."""

    statement_timeout_ms: int = Field(default=30_000, ge=0)
    lock_timeout_ms: int = Field(default=1_000, ge=0)
    connect_timeout_s: int = Field(default=10, ge=1)
    #: a query whose answer has not come this long after its statement_timeout is given up
    #: and the connection closed: the server already cancelled it, the link is silent
    query_deadline_margin_s: float = Field(default=10.0, gt=0)
    application_name: str = "opscope"


class DbThresholds(_Frozen):
    """Thresholds of the database checks; docs/config.md lists each with its meaning."""

    slow_query_ms: float = Field(default=1000.0, gt=0)
    top_statements: int = Field(default=10, ge=0)
    top_statements_min_share: float = Field(default=0.01, ge=0, le=1)
    min_calls: int = Field(default=1, ge=1)
    unused_index_min_stats_age_days: float = Field(default=7.0, ge=0)
    index_bloat_ratio: float = Field(default=0.3, gt=0, lt=1)
    index_bloat_min_bytes: int = Field(default=1 << 20, ge=0)
    table_bloat_ratio: float = Field(default=0.3, gt=0, lt=1)
    table_bloat_min_bytes: int = Field(default=1 << 20, ge=0)
    table_bloat_rewrite_ratio: float = Field(default=0.7, gt=0, lt=1)
    stale_statistics_ratio: float = Field(default=0.2, gt=0)
    stale_statistics_min_rows: int = Field(default=1000, ge=0)
    large_table_bytes: int = Field(default=1 << 30, ge=0)
    seq_scan_min_bytes: int = Field(default=10 << 20, ge=0)
    seq_scan_ratio: float = Field(default=0.5, gt=0, le=1)
    seq_scan_min_scans: int = Field(default=10, ge=1)
    xid_age_warning: int = Field(default=500_000_000, ge=1)
    xid_age_critical: int = Field(default=1_200_000_000, ge=1)
    vacuum_overdue_hours: float = Field(default=24.0, ge=0)
    vacuum_overdue_min_dead_tuples: int = Field(default=1000, ge=0)


class PlanSettings(_Frozen):
    """Thresholds of the plan diagnosis (defaults suit OLTP and mixed workloads)."""

    #: a sequential scan matters from this many rows in the table
    seq_scan_min_rows: int = Field(default=10_000, ge=0)
    #: ...when the filter throws away at least this share of the rows it reads
    seq_scan_discard_ratio: float = Field(default=0.9, gt=0, le=1)
    #: estimated and actual rows differ by this factor or more
    misestimate_factor: float = Field(default=10.0, gt=1)
    #: ...and the larger of the two is at least this many rows (1 vs 9 rows is noise)
    misestimate_min_rows: float = Field(default=100.0, ge=0)
    #: a nested loop's inner side runs at least this many times
    nested_loop_min_loops: int = Field(default=1000, ge=1)
    #: how many statements (by total time) the automatic review of `analyze db` plans
    review_statements: int = Field(default=10, ge=0)
    #: the review runs EXPLAIN ANALYZE only for read-only statements whose mean time is
    #: below this: a review must not add heavy load
    review_analyze_max_mean_ms: float = Field(default=500.0, ge=0)
    #: functions outside PostgreSQL's built-ins that the user knows only read, so EXPLAIN
    #: ANALYZE may run statements that reach them: `schema.name(type, ...)`, or
    #: `schema.name` for every overload
    read_only_functions: tuple[str, ...] = ()
    #: extensions whose immutable and stable functions are trusted to only read
    read_only_extensions: tuple[str, ...] = ()

    @field_validator("read_only_functions")
    @classmethod
    def _function_entries(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            parse_function_entry(entry)
        return value


class AdvisorSettings(_Frozen):
    """Bounds and weights of the index advisor."""

    #: recommend at most this many indexes
    max_indexes: int = Field(default=10, ge=1)
    #: a statement counts as helped when its planner cost drops by at least this share
    min_improvement: float = Field(default=0.2, gt=0, le=1)
    #: the top statements by total time that make up the workload
    statements: int = Field(default=50, ge=1)
    #: tables with fewer rows are never indexed: a few pages read in full cost nothing
    min_table_rows: int = Field(default=1000, ge=0)
    #: candidates costed at most (each costs one EXPLAIN per statement on its table)
    max_candidates: int = Field(default=80, ge=1)
    #: INCLUDE at most this many columns for a covering index
    max_include: int = Field(default=3, ge=0)
    #: planner-cost units one index entry adds to a written row (a btree descent, WAL)
    write_cost_per_row: float = Field(default=2.0, ge=0)
    #: candidates of equality keys only that match more than this share of the rows are not
    #: costed: a low-cardinality column (a status with five values) is better read in full
    max_equality_share: float = Field(default=0.1, gt=0, le=1)
    #: stop costing after this many seconds and report what was found (partial)
    time_budget_s: float = Field(default=60.0, gt=0)
    #: writes are weighed as a rate over at least this many seconds: table counters younger
    #: than that (reset, or a server just started) would take a bulk load for a steady rate
    write_rate_min_window_s: float = Field(default=3600.0, ge=0)


class LogSettings(_Frozen):
    """Defaults of `opscope logs`; its command-line options win."""

    #: length of the top lists
    top: int = Field(default=20, ge=1)
    #: worker processes; None: every core for big input
    jobs: int | None = Field(default=None, ge=1)
    #: longest entry kept, in bytes: a longer one is cut (stderr) or left out (csvlog,
    #: jsonlog) and counted; what bounds memory whatever the input
    max_entry_bytes: int = Field(default=1 << 20, ge=4096, le=1 << 30)
    #: an autovacuum run of a table this long (seconds) makes an `autovacuum_slow` finding
    autovacuum_slow_s: float = Field(default=60.0, gt=0)
    #: `checkpoints_too_frequent` when more than this share of the automatic checkpoints
    #: were started because WAL filled max_wal_size...
    checkpoint_wal_share: float = Field(default=0.1, ge=0, le=1)
    #: ...or when automatic checkpoints are, on median, less than this many seconds apart
    checkpoint_min_interval_s: float = Field(default=60.0, gt=0)
    #: the server's checkpoint_timeout and checkpoint_completion_target (the log does not
    #: say them), from which the max_wal_size that checkpoints by time needs is computed
    checkpoint_timeout_s: float = Field(default=300.0, ge=30, le=86400)
    checkpoint_completion_target: float = Field(default=0.9, ge=0, le=1)


class MonitorSettings(_Frozen):
    """What `opscope serve` collects from each database."""

    #: statements exposed one by one on /metrics (by total time); the rest are summed, so
    #: the number of series stays bounded however many statements the server tracks
    top_statements: int = Field(default=20, ge=0, le=500)
    #: characters of a statement's text kept in its `query` label
    query_label_chars: int = Field(default=80, ge=10, le=500)
    #: seconds between two snapshots kept in the store (statistics of every table, index
    #: and statement); every collection updates /metrics, one in this many is stored
    snapshot_interval_s: float = Field(default=300.0, gt=0)


class PartitionSettings(_Frozen):
    """When a table is worth partitioning, and what a healthy partitioned table looks like."""

    #: tables smaller than this are never proposed for partitioning
    min_table_bytes: int = Field(default=10 << 30, ge=0)
    #: a key counts when the statements filtering on it make this share of the table's calls
    workload_share: float = Field(default=0.5, gt=0, le=1)
    #: a range partition should hold at least this many rows: a finer range is not proposed
    min_partition_rows: int = Field(default=100_000, ge=1)
    #: far too many partitions: a median partition below this size
    min_partition_bytes: int = Field(default=1 << 20, ge=0)
    #: far too few partitions: one of at least this size holding nearly all the data
    max_partition_bytes: int = Field(default=50 << 30, ge=1)
    #: far too many partitions: more than this
    max_partitions: int = Field(default=1000, ge=1)
    #: future range partitions proposed ahead of the data
    premake: int = Field(default=4, ge=1)
    #: range partitions must reach at least this many days ahead
    runway_days: float = Field(default=7.0, ge=0)
    #: statements on partitioned tables whose plans are checked for pruning, at most
    review_statements: int = Field(default=20, ge=0)


class PostgresSettings(_Frozen):
    """Settings every database shares (`postgresql:`)."""

    session: SessionSettings = SessionSettings()
    thresholds: DbThresholds = DbThresholds()
    plans: PlanSettings = PlanSettings()
    advisor: AdvisorSettings = AdvisorSettings()
    partitioning: PartitionSettings = PartitionSettings()
    logs: LogSettings = LogSettings()
    monitor: MonitorSettings = MonitorSettings()
    health: HealthSettings = HealthSettings()


class DatabaseTarget(_Frozen):
    """One database under `databases:`; its blocks replace only the keys they set."""

    dsn: str
    session: SessionSettings | None = None
    thresholds: DbThresholds | None = None
    plans: PlanSettings | None = None
    advisor: AdvisorSettings | None = None
    health: HealthSettings | None = None
    partitioning: PartitionSettings | None = None

    @field_validator("dsn")
    @classmethod
    def _dsn_scheme(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")) and "=" not in value:
            raise ValueError("expected a postgresql:// URL or a key=value connection string")
        return value


class Databases(RootModel[dict[str, DatabaseTarget]]):
    model_config = ConfigDict(frozen=True)

    root: dict[str, DatabaseTarget] = Field(default_factory=dict)


DATABASES = ConfigSection(
    "databases", Databases, "the PostgreSQL databases opscope watches, by name"
)
POSTGRESQL = ConfigSection(
    "postgresql",
    PostgresSettings,
    "settings every database shares: sessions, thresholds, plans, advisor, partitioning, logs, "
    "monitor, health",
    replaces=("session", "thresholds", "plans", "advisor"),
)

_OVERRIDABLE = ("session", "thresholds", "plans", "advisor", "health", "partitioning")


def databases(config: Config) -> dict[str, DatabaseTarget]:
    return DATABASES.of(config).root


def settings_for(config: Config, database: str | None) -> PostgresSettings:
    """The shared settings, with the keys a database's own blocks set replacing them."""
    shared = POSTGRESQL.of(config)
    target = databases(config).get(database) if database else None
    if target is None:
        return shared
    update: dict[str, BaseModel] = {}
    for name in _OVERRIDABLE:
        own: BaseModel | None = getattr(target, name)
        if own is not None:
            base: BaseModel = getattr(shared, name)
            update[name] = base.model_copy(
                update={key: getattr(own, key) for key in own.model_fields_set}
            )
    return shared.model_copy(update=update)


def postgres_config(
    settings: PostgresSettings | None = None,
    *,
    targets: dict[str, DatabaseTarget] | None = None,
    state_dir: Path | None = None,
) -> Config:
    """A Config holding only this area's sections, for the library and tests."""
    sections: dict[str, BaseModel] = {"postgresql": settings or PostgresSettings()}
    if targets:
        sections["databases"] = Databases(targets)
    return Config(sections=sections, state_dir=state_dir)

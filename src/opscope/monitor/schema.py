"""The history store's schema: one SQLAlchemy Core description for SQLite and PostgreSQL.

It is a contract: alerts, SLAs and dashboards read it. Changes go through a new Alembic
migration (opscope/monitor/migrations/versions), never by editing an old one, and
tests/test_monitor_store.py holds the migrations and this module to the same schema.

Times are Unix seconds (UTC) as floats: the same in both databases, cheap to index and to
subtract. Labels are canonical JSON (keys sorted), so one series is one row.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

#: one row per collector run, successful or not: what alerts on collectors will read
runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("collector", String(200), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("target", String(200), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float, nullable=False),
    Column("ok", Boolean, nullable=False),
    #: one line, passwords removed
    Column("error", Text, nullable=True),
    Column("samples", Integer, nullable=False, default=0),
    Index("ix_runs_collector_started", "collector", "started_at"),
    Index("ix_runs_started", "started_at"),
)

#: a metric name with one set of labels
series = Table(
    "series",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("labels", Text, nullable=False),
    #: counter, gauge, summary, histogram, info, stateset or unknown (the family's type)
    Column("type", String(16), nullable=False),
    UniqueConstraint("name", "labels", name="uq_series_name_labels"),
)

#: raw samples, kept `serve.retention.raw`
points = Table(
    "points",
    metadata,
    Column("series_id", Integer, ForeignKey("series.id"), primary_key=True),
    Column("ts", Float, primary_key=True),
    Column("value", Float, nullable=False),
    Index("ix_points_ts", "ts"),
)

#: raw samples folded into one row per series and step once older than `retention.raw`
rollups = Table(
    "rollups",
    metadata,
    Column("series_id", Integer, ForeignKey("series.id"), primary_key=True),
    Column("step_s", Integer, primary_key=True),
    #: start of the step
    Column("ts", Float, primary_key=True),
    Column("count", Integer, nullable=False),
    Column("sum", Float, nullable=False),
    Column("min", Float, nullable=False),
    Column("max", Float, nullable=False),
    #: the value at the end of the step: what a counter's rate needs
    Column("last", Float, nullable=False),
    Index("ix_rollups_ts", "ts"),
)

#: an area's document of a target at one moment (statistics of its tables, indexes,
#: statements, ...), in the area's own versioned shape
snapshots = Table(
    "snapshots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=True),
    Column("target", String(200), nullable=False),
    #: the area's name for the document, e.g. "postgresql.stats/1"
    Column("kind", String(64), nullable=False),
    Column("taken_at", Float, nullable=False),
    #: "json+zstd": zstandard-compressed UTF-8 JSON
    Column("encoding", String(16), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Index("ix_snapshots_target_kind_taken", "target", "kind", "taken_at"),
)

#: the findings of each analysis run
findings = Table(
    "findings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
    Column("target", String(200), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("check_id", String(100), nullable=False),
    Column("severity", String(16), nullable=False),
    #: the finding's stable id (check + object + ...), the same across runs
    Column("fingerprint", String(64), nullable=False),
    Column("object", Text, nullable=False),
    Column("title", Text, nullable=False),
    #: the whole finding as the JSON report has it
    Column("data", Text, nullable=False),
    Column("seen_at", Float, nullable=False),
    Index("ix_findings_run", "run_id"),
    Index("ix_findings_fingerprint_seen", "fingerprint", "seen_at"),
    Index("ix_findings_seen", "seen_at"),
)

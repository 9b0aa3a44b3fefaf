"""The first schema: runs, series, points, rollups, snapshots, findings.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("collector", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("samples", sa.Integer, nullable=False),
    )
    op.create_index("ix_runs_collector_started", "runs", ["collector", "started_at"])
    op.create_index("ix_runs_started", "runs", ["started_at"])
    op.create_table(
        "series",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("labels", sa.Text, nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.UniqueConstraint("name", "labels", name="uq_series_name_labels"),
    )
    op.create_table(
        "points",
        sa.Column("series_id", sa.Integer, sa.ForeignKey("series.id"), primary_key=True),
        sa.Column("ts", sa.Float, primary_key=True),
        sa.Column("value", sa.Float, nullable=False),
    )
    op.create_index("ix_points_ts", "points", ["ts"])
    op.create_table(
        "rollups",
        sa.Column("series_id", sa.Integer, sa.ForeignKey("series.id"), primary_key=True),
        sa.Column("step_s", sa.Integer, primary_key=True),
        sa.Column("ts", sa.Float, primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("sum", sa.Float, nullable=False),
        sa.Column("min", sa.Float, nullable=False),
        sa.Column("max", sa.Float, nullable=False),
        sa.Column("last", sa.Float, nullable=False),
    )
    op.create_index("ix_rollups_ts", "rollups", ["ts"])
    op.create_table(
        "snapshots",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=True),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("taken_at", sa.Float, nullable=False),
        sa.Column("encoding", sa.String(16), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_snapshots_target_kind_taken", "snapshots", ["target", "kind", "taken_at"])
    op.create_table(
        "findings",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("check_id", sa.String(100), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("object", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("seen_at", sa.Float, nullable=False),
    )
    op.create_index("ix_findings_run", "findings", ["run_id"])
    op.create_index("ix_findings_fingerprint_seen", "findings", ["fingerprint", "seen_at"])
    op.create_index("ix_findings_seen", "findings", ["seen_at"])


def downgrade() -> None:
    for table in ("findings", "snapshots", "rollups", "points", "series", "runs"):
        op.drop_table(table)

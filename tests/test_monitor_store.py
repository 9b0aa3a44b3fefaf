"""The history store on SQLite and on PostgreSQL: its migrations build exactly the schema
the code describes, one run is kept whole, series and snapshots come back, retention folds
old points into rollups and thins old snapshots."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily

from opscope.db.sandbox import Sandbox
from opscope.findings import Finding, Report, Severity
from opscope.monitor.schema import metadata
from opscope.monitor.settings import Retention
from opscope.monitor.store import RunRecord, Store, StoreError, open_for_reading

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "store" / "opscope.db")
        return
    cluster: Sandbox = request.getfixturevalue("cluster")
    name = "store_" + uuid.uuid4().hex[:10]
    cluster.psql(f"CREATE DATABASE {name}")
    try:
        yield cluster.dsn(name)
    finally:
        cluster.psql(f"DROP DATABASE {name} WITH (FORCE)")


def _run(at: datetime, ok: bool = True, error: str | None = None) -> RunRecord:
    return RunRecord("postgresql/w", "postgresql", "w", at, at + timedelta(seconds=1), ok, error)


def _gauge(value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily("pg_up", "up", labels=["target"])
    family.add_metric(["w"], value)
    return family


def test_the_migrations_build_the_schema_the_code_describes(store_url: str) -> None:
    store = Store.open(store_url)
    try:
        with store.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        assert store.revision() == "0001"
        # opening again is a no-op, and a reader accepts it
        Store.open(store_url).close()
        open_for_reading(store_url).close()
    finally:
        store.close()


def test_a_run_is_kept_whole_and_read_back(store_url: str) -> None:
    store = Store.open(store_url)
    try:
        counter = CounterMetricFamily("fake_runs", "runs", labels=["target"])
        counter.add_metric(["w"], 3.0)
        finding = Finding.make(
            check="unused_index",
            category="indexes",
            severity=Severity.warning,
            target="w",
            object="public.i",
            title="Unused index public.i",
        )
        for minute in range(3):
            store.record(
                _run(T0 + timedelta(minutes=minute)),
                metrics=[_gauge(1.0), counter],
                snapshot_docs={"test.stats/1": {"minute": minute, "when": T0}},
                report=Report(findings=[finding]) if minute == 2 else None,
            )
        store.record(_run(T0 + timedelta(minutes=3), ok=False, error="cannot connect"))
        [up] = store.series("pg_up", {"target": "w"})
        assert [v for _, v in up.points] == [1.0, 1.0, 1.0]
        assert up.type == "gauge"
        assert store.series("fake_runs_total")[0].type == "counter"
        assert store.series("pg_up", {"target": "other"}) == []
        latest = store.latest_snapshot("w", "test.stats/1")
        assert latest is not None and latest[1] == {"minute": 2, "when": T0.isoformat()}
        first = store.snapshot_after("w", "test.stats/1", T0 + timedelta(seconds=30))
        assert first is not None and first.data["minute"] == 1
        before = store.snapshot_before("w", "test.stats/1", T0 + timedelta(seconds=30))
        assert before is not None and before.data["minute"] == 0
        failed = store.runs("postgresql/w", ok=False)
        assert [r.error for r in failed] == ["cannot connect"]
        assert [f["id"] for f in store.current_findings()] == [finding.id]
    finally:
        store.close()


def test_retention_folds_old_points_and_thins_old_snapshots(store_url: str) -> None:
    store = Store.open(store_url)
    retention = Retention.model_validate(
        {
            "raw": "1h",
            "downsample_step": "10m",
            "downsampled": "30d",
            "snapshots": "7d",
            "snapshot_step": "1h",
        }
    )
    try:
        for minute in range(0, 120, 2):
            store.record(
                _run(T0 + timedelta(minutes=minute)),
                metrics=[_gauge(float(minute))],
                snapshot_docs={"test.stats/1": {"minute": minute}},
            )
        now = T0 + timedelta(hours=3)
        done = store.prune(now, retention)
        assert done["rolled_up"] == 12 and done["points_deleted"] == 60
        [up] = store.series("pg_up")
        # one point per 10 minutes, the mean of a gauge's five samples in it
        assert [v for _, v in up.points][:2] == [4.0, 14.0]
        minutes = [s.data["minute"] for s in store.snapshots("w", "test.stats/1")]
        assert minutes == [58, 118]  # the last of each hour
        # everything past every retention goes
        later = store.prune(now + timedelta(days=40), retention)
        assert later["rollups_deleted"] == 12 and later["runs_deleted"] == 60
        assert store.series("pg_up")[0].points == []
    finally:
        store.close()


def test_a_reader_never_creates_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no history store"):
        open_for_reading(str(tmp_path / "missing.db"))
    assert not (tmp_path / "missing.db").exists()
    empty = tmp_path / "empty.db"
    sa.create_engine(f"sqlite:///{empty}").connect().close()
    with pytest.raises(StoreError, match="holds no opscope history"):
        open_for_reading(str(empty))

"""The service through restarts, crashes and a database that goes away, with the store on
SQLite and on PostgreSQL: a restart keeps the history; `kill -9` during writes loses no
committed run and leaves the store readable; a stopped database is recorded as collector
errors while the service keeps serving, and collection resumes by itself when it returns.
The watched database is a cluster of its own, so stopping it disturbs no other test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from opscope.db.sandbox import Sandbox
from opscope.monitor.store import open_for_reading
from serve_process import ServeProcess, write_config

pytestmark = pytest.mark.integration


@pytest.fixture
def watched() -> Iterator[Sandbox]:
    box = Sandbox.create()
    try:
        box.start()
        box.psql("CREATE DATABASE app")
        box.psql("CREATE EXTENSION pg_stat_statements", dbname="app")
        yield box
    finally:
        box.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "store.db")
        return
    cluster: Sandbox = request.getfixturevalue("cluster")
    name = "store_" + uuid.uuid4().hex[:10]
    cluster.psql(f"CREATE DATABASE {name}")
    try:
        yield cluster.dsn(name)
    finally:
        cluster.psql(f"DROP DATABASE {name} WITH (FORCE)")


def _runs(service: ServeProcess, **params: object) -> list[dict[str, object]]:
    return service.json("/api/v1/runs", collector="postgresql/app", limit=1000, **params)  # type: ignore[no-any-return]


def test_history_survives_restarts_crashes_and_a_database_outage(
    watched: Sandbox, store_url: str, tmp_path: Path
) -> None:
    path = write_config(
        tmp_path / "opscope.yaml",
        {
            "databases": {"app": {"dsn": watched.dsn("app")}},
            "postgresql": {
                "monitor": {"snapshot_interval_s": 0.2},
                "session": {"connect_timeout_s": 2},
            },
            "serve": {
                "store": store_url,
                "interval_s": 0.2,
                "jitter": 0,
                "analysis_interval_s": 3600,
                "collectors": {"analysis/postgresql/app": {"enabled": False}},
            },
        },
    )
    service = ServeProcess(path, tmp_path).start()
    try:
        # history accumulates
        service.wait_for(lambda: len(_runs(service)) >= 5, "no history")
        assert service.stop() == 0
        service.start()
        kept = _runs(service)
        assert len(kept) >= 5, "a restart lost the history"
        before = len(kept)
        service.wait_for(lambda: len(_runs(service)) > before + 3, "no new history")

        # kill -9 while runs are being written (one every 0.2 s)
        committed = max(int(r["id"]) for r in _runs(service))  # type: ignore[call-overload]
        service.kill()
        reader = open_for_reading(store_url)
        try:
            ids = {r.id for r in reader.runs("postgresql/app", limit=100_000)}
            assert set(range(1, committed + 1)) <= ids, "a committed run was lost"
            assert reader.latest_snapshot("app", "postgresql.stats/1") is not None
            if not reader.is_postgres:
                with reader.engine.connect() as conn:
                    assert conn.execute(sa.text("PRAGMA integrity_check")).scalar() == "ok"
        finally:
            reader.close()

        # the database stops: errors are recorded, the service keeps serving
        service.start()
        service.wait_for(lambda: service.collector("postgresql/app")["up"] is True, "not up")
        watched.stop(remove=False)
        service.wait_for(
            lambda: service.collector("postgresql/app")["errors"] >= 2, "no collector error"
        )
        status = service.collector("postgresql/app")
        assert status["up"] is False and "cannot connect" in status["last_error"]
        assert service.get("/healthz").status_code == 200
        assert service.value("opscope_collector_up", collector="postgresql/app") == 0.0
        assert service.value("pg_up", target="app") == 0.0
        errors = service.value("opscope_collector_errors_total", collector="postgresql/app")
        assert errors is not None and errors >= 2
        failed = _runs(service, ok=False)
        assert failed and "cannot connect" in str(failed[0]["error"])

        # and collection resumes by itself when it is back
        watched.resume()
        service.wait_for(
            lambda: service.collector("postgresql/app")["up"] is True, "never recovered", 60
        )
        assert service.value("pg_up", target="app") == 1.0
        assert "postgresql/app is back" in service.output()
    finally:
        service.close()

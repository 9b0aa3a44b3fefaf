"""The real service against the real test cluster and the shop app: history accumulates in
the store, /metrics covers both, SIGHUP reloads (a bad file is rejected while the old config
keeps running), SIGTERM stops cleanly; two shards cover every target once; the stored
snapshots answer `analyze db --since`, index usage across a statistics reset and growth."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from api_servers import free_port, serve, server_env, uvicorn
from conftest import SandboxDb
from opscope.db.monitor.analysis import DatabaseAnalysis
from opscope.db.monitor.collector import PostgresCollector
from opscope.db.monitor.snapshot import growth_rates
from opscope.db.settings import MonitorSettings, PostgresSettings
from opscope.findings import utc_now
from opscope.monitor.collector import CollectContext
from opscope.monitor.store import RunRecord, Store
from serve_process import ServeProcess, write_config


@pytest.fixture
def shop(db: SandboxDb, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    with serve(uvicorn(port, 1), server_env(db.dsn), port, tmp_path / "shop.log") as base:
        yield base


def _config(db: SandboxDb, tmp_path: Path, **serve_settings: object) -> dict[str, object]:
    return {
        "databases": {"shopdb": {"dsn": db.dsn}},
        "postgresql": {"monitor": {"snapshot_interval_s": 0.5}},
        "serve": {
            "store": str(tmp_path / "store.db"),
            "interval_s": 0.5,
            "analysis_interval_s": 2,
            **serve_settings,
        },
    }


def test_the_service_collects_a_database_and_an_app(
    db: SandboxDb, shop: str, tmp_path: Path
) -> None:
    # something for the analysis to find: a copy of an index
    db.execute(
        "CREATE TABLE dup (a int)",
        "CREATE INDEX dup_a1 ON dup (a)",
        "CREATE INDEX dup_a2 ON dup (a)",
    )
    config = _config(db, tmp_path)
    config["apis"] = {"shop": {"metrics_url": f"{shop}/metrics"}}
    path = write_config(tmp_path / "opscope.yaml", config)
    for _ in range(5):
        subprocess.run(["curl", "-s", f"{shop}/health"], capture_output=True, check=False)
    service = ServeProcess(path, tmp_path).start()
    try:
        service.wait_for(
            lambda: (
                service.collector("postgresql/shopdb")["runs"] >= 3
                and service.collector("api/shop")["runs"] >= 2
                and service.collector("analysis/postgresql/shopdb")["runs"] >= 1
            ),
            "the collectors never ran",
        )
        assert service.value("pg_up", target="shopdb") == 1.0
        assert service.value("opscope_collector_up", collector="api/shop") == 1.0
        # the app's own series, relabeled with the target it came from
        assert service.value(
            "http_server_request_duration_seconds_count", target="shop", http_route="/health"
        )
        assert service.value("pg_stat_database_xact_commit_total", datname=db.name)
        # history accumulates: one stored point per run
        [series] = service.json(
            "/api/v1/series", name="pg_stat_database_xact_commit_total", match=f"datname={db.name}"
        )
        assert len(series["points"]) >= 3
        assert [p[1] for p in series["points"]] == sorted(p[1] for p in series["points"])
        runs = service.json("/api/v1/runs", collector="postgresql/shopdb")
        assert len(runs) >= 3 and all(r["ok"] for r in runs)
        findings = service.json("/api/v1/findings", target="shopdb")
        assert findings and all(f["target"] == "shopdb" for f in findings)
        assert "duplicate_index" in {f["check"] for f in findings}
        assert service.value("opscope_findings", target="shopdb", check=findings[0]["check"])
        assert service.json("/readyz")["status"] == "ready"

        # a bad file is rejected and the running config stays
        path.write_text("serve: {interval_s: -1}\n")
        service.signal(signal.SIGHUP)
        service.wait_for(lambda: "reload rejected" in service.output(), "no rejection said")
        assert "serve.interval_s" in service.output()
        assert {c["name"] for c in service.json("/api/v1/collectors")} == {
            "postgresql/shopdb",
            "analysis/postgresql/shopdb",
            "api/shop",
            "analysis/api/shop",
        }
        # a good one replaces it: the API is gone, a second name for the database comes
        config["databases"] = {"shopdb": {"dsn": db.dsn}, "again": {"dsn": db.dsn}}
        del config["apis"]
        write_config(path, config)
        service.signal(signal.SIGHUP)
        service.wait_for(
            lambda: (
                {c["name"] for c in service.json("/api/v1/collectors")}
                == {
                    "postgresql/shopdb",
                    "analysis/postgresql/shopdb",
                    "postgresql/again",
                    "analysis/postgresql/again",
                }
            ),
            "the new config never took effect",
        )
        service.wait_for(lambda: service.value("pg_up", target="again") == 1.0, "no new target")
        assert service.value("opscope_collector_up", collector="api/shop") is None
    finally:
        status = service.stop()
    assert status == 0, service.output()
    assert "opscope serve: stopped" in service.output()


def test_two_shards_cover_every_target_once(db: SandboxDb, tmp_path: Path) -> None:
    names = [f"db{i}" for i in range(6)]
    config: dict[str, object] = {
        "databases": {name: {"dsn": db.dsn} for name in names},
        "serve": {"store": str(tmp_path / "store.db"), "interval_s": 60},
    }
    owners: dict[str, list[str]] = {}
    services = []
    try:
        for shard in ("0/2", "1/2"):
            config["serve"]["shard"] = shard  # type: ignore[index]
            path = write_config(tmp_path / f"shard{shard[0]}.yaml", config)
            services.append(ServeProcess(path, tmp_path).start())
        for service in services:
            for c in service.json("/api/v1/collectors"):
                owners.setdefault(c["target"], []).append(c["name"])
        assert sorted(owners) == names
        for target, jobs in owners.items():
            assert sorted(jobs) == [f"analysis/postgresql/{target}", f"postgresql/{target}"]
        # each instance took some: the hash spread them
        assert all(service.json("/api/v1/collectors") for service in services)
    finally:
        for service in services:
            service.stop()


def _collect(collector: PostgresCollector, store: Store) -> None:
    started = utc_now()
    collection = collector.collect(CollectContext(history=store, clock=utc_now))
    store.record(
        RunRecord(collector.name, collector.kind, collector.target, started, utc_now(), True),
        metrics=collection.metrics,
        snapshot_docs=collection.snapshots,
        taken_at=collection.taken_at,
    )


def _settings() -> PostgresSettings:
    return PostgresSettings(monitor=MonitorSettings(snapshot_interval_s=0.001))


def test_analyze_since_reports_only_what_the_stored_window_saw(
    db: SandboxDb, tmp_path: Path
) -> None:
    db.execute(
        "CREATE TABLE t (id int PRIMARY KEY, v int)",
        "INSERT INTO t SELECT g, g % 10 FROM generate_series(1, 20000) g",
        "ANALYZE t",
    )
    store_path = tmp_path / "store.db"
    config = {
        "databases": {"w": {"dsn": db.dsn}},
        "serve": {"store": str(store_path)},
        "postgresql": {"monitor": {"snapshot_interval_s": 0.001}},
    }
    path = write_config(tmp_path / "opscope.yaml", config)
    from opscope.cli_common import load_or_fail

    cfg = load_or_fail(path)
    store = Store.open(str(store_path))
    collector = PostgresCollector(cfg, "w", db.dsn)
    try:
        for _ in range(5):
            db.execute("SELECT count(*) FROM t WHERE v = 3")
        _collect(collector, store)
        time.sleep(0.05)
        for _ in range(3):
            db.execute("SELECT count(*) FROM t WHERE v = 3")
        _collect(collector, store)
    finally:
        store.close()

    def calls(*extra: str) -> int:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "opscope",
                "analyze",
                "db",
                "w",
                "-c",
                str(path),
                "-f",
                "json",
                "--check",
                "slow_query",
                *extra,
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={"OPSCOPE_STATE_DIR": str(tmp_path / "state"), "PATH": "/usr/bin:/bin"},
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        return sum(
            int(f["evidence"]["calls"])
            for f in report["findings"]
            if "WHERE v = $1" in f["evidence"]["query"]
        )

    assert calls() == 8  # cumulative, since the last reset
    assert calls("--since", "1h") == 3  # what ran between the two stored snapshots
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "opscope",
            "analyze",
            "db",
            db.dsn,
            "-c",
            str(path),
            "--since",
            "1h",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert "opscope serve collecting it" in bad.stderr


def test_index_usage_over_the_observed_window_survives_a_statistics_reset(
    db: SandboxDb, tmp_path: Path
) -> None:
    db.execute(
        "CREATE TABLE t (id int, a int, b int)",
        "INSERT INTO t SELECT g, g, g FROM generate_series(1, 20000) g",
        "CREATE INDEX t_a ON t (a)",
        "CREATE INDEX t_b ON t (b)",
        "ANALYZE t",
    )
    from opscope.db.settings import postgres_config

    cfg = postgres_config(_settings(), state_dir=tmp_path / "state")
    store = Store.open(str(tmp_path / "store.db"))
    collector = PostgresCollector(cfg, "w", db.dsn)
    try:
        _collect(collector, store)
        db.execute("SET enable_seqscan = off; SELECT * FROM t WHERE a = 5")
        _collect(collector, store)
        db.execute(
            "SELECT pg_stat_reset()", "INSERT INTO t SELECT g, g, g FROM generate_series(1, 5000) g"
        )
        _collect(collector, store)
        report = DatabaseAnalysis(cfg, "w", db.dsn).run(
            CollectContext(history=store, clock=utc_now)
        )
        growth = growth_rates(store, "w")
    finally:
        store.close()
    unused = {f.object: f for f in report.findings if f.check == "unused_index"}
    # since the reset neither index was scanned, but the store saw t_a used before it
    assert "public.t_a" not in unused
    assert "observed_since" in unused["public.t_b"].evidence
    assert "across statistics resets" in unused["public.t_b"].detail
    assert growth["public.t"].bytes_after > growth["public.t"].bytes_before
    assert growth["public.t"].bytes_per_day and growth["public.t"].bytes_per_day > 0
    assert growth["public.t"].until - growth["public.t"].since < timedelta(minutes=5)


def test_check_runs_every_configured_analysis_once(db: SandboxDb, tmp_path: Path) -> None:
    db.execute("CREATE TABLE t (id int, a int)", "CREATE INDEX t_a ON t (a)")
    config: dict[str, object] = {"databases": {"main": {"dsn": db.dsn}}}
    path = write_config(tmp_path / "opscope.yaml", config)

    def check(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "opscope", "check", "-c", str(path), "-f", "json", *extra],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={"OPSCOPE_STATE_DIR": str(tmp_path / "state"), "PATH": "/usr/bin:/bin"},
            timeout=120,
        )

    done = check()
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [t["name"] for t in report["targets"]] == ["main"]
    assert any(f["check"] == "unused_index" for f in report["findings"])
    assert check("--fail-on", "info").returncode == 1
    # a target that cannot be read: one line, the others still reported, exit 2
    config["databases"] = {"main": {"dsn": db.dsn}, "gone": {"dsn": "postgresql://127.0.0.1:1/x"}}
    write_config(path, config)
    partial = check()
    assert partial.returncode == 2
    assert partial.stderr.count("opscope: error: postgresql/gone:") == 1, partial.stderr
    assert "main" in {t["name"] for t in json.loads(partial.stdout)["targets"]}
    write_config(path, {})
    empty = check()
    assert empty.returncode == 2 and "nothing to check" in empty.stderr

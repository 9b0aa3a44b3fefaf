"""Connection pools under real load: a FastAPI app under uvicorn whose small psycopg_pool
pool runs out while its SQLAlchemy pool does not, read from its /metrics and sized with
Little's law against what the test database can take; and a real PgBouncer in front of the
test cluster whose pool makes clients wait."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from api_servers import free_port, serve, server_env
from conftest import SandboxDb, found
from opscope.config import Config
from opscope.db.settings import Databases, DatabaseTarget
from opscope.findings import Report
from opscope.resources.analyze import analyze_resources
from opscope.resources.pools import pools_of
from opscope.resources.settings import (
    PgBouncerTarget,
    PoolSource,
    ResourceSettings,
    ResourceThresholds,
)
from opscope.resources.sizing import erlang_c, servers_for, size_pool


def _config(tmp: Path, **settings: object) -> Config:
    sections = {"resources": ResourceSettings(**settings)}  # type: ignore[arg-type]
    return Config(sections=sections, state_dir=tmp)


def _load(url: str, clients: int, seconds: float) -> int:
    """`clients` threads sending back to back for `seconds`; the requests that answered 200."""
    done = [0] * clients
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        with httpx.Client(timeout=60) as http:
            while time.monotonic() < stop:
                if http.get(url).status_code == 200:
                    done[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done)


@pytest.fixture
def pool_app(db: SandboxDb, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "pool_app:app", "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning"]  # fmt: skip
    with serve(argv, server_env(db.dsn), port, tmp_path / "uvicorn.log") as base:
        yield base


def test_a_small_pool_runs_out_under_load_and_gets_its_size(
    db: SandboxDb, pool_app: str, tmp_path: Path
) -> None:
    loads = [
        threading.Thread(target=_load, args=(pool_app + "/small", 12, 3.0)),
        # the near miss: 4 clients on a pool of 8 never wait
        threading.Thread(target=_load, args=(pool_app + "/big", 4, 3.0)),
    ]
    for t in loads:
        t.start()
    for t in loads:
        t.join()
    config = Config(
        sections={
            "resources": ResourceSettings(
                pools={"shop": PoolSource(metrics_url=pool_app + "/metrics", database="test")}
            ),
            "databases": Databases({"test": DatabaseTarget(dsn=db.dsn)}),
        },
        state_dir=tmp_path,
    )
    report = analyze_resources(config, parts=["pools"])
    assert not report.errors, report.errors
    pools = {p["name"]: p for p in report.summary[report.targets[0].name]["pools"]}
    assert set(pools) == {"small", "big"}
    assert pools["small"]["max_size"] == 2 and pools["big"]["max_size"] == 8
    (f,) = found(report, "pool_saturation")
    assert f.object == "pool:shop/small"
    e = f.evidence
    assert e["max_size"] == 2 and e["checkouts"] > 50
    assert float(e["queued_share"]) > 0.5  # 12 clients on 2 connections: most wait
    # Little's law: busy connections = checkout rate x hold time, and the pool was full
    load = float(e["offered_load_connections"])
    assert load == pytest.approx(e["checkout_rate_per_s"] * e["hold_ms"] / 1000, rel=0.01)
    assert 1.0 < load <= 2.05
    # the app's queries (request rate x database time per request, both routes) keep about
    # as many connections busy as both pools' holds
    both = load + float(pools["big"]["load"])
    assert 0.5 * both < float(e["app_request_rate_x_db_time"]) <= both * 1.05
    assert not found(report, "pool_saturation", "pool:shop/big")
    # at least one more than it has (it made checkouts wait), and what Erlang C asks for
    assert e["recommended_per_process"] == max(3, servers_for(load, 0.05))
    assert e["wait_probability_now"] > 0.5 and e["wait_probability_recommended"] <= 0.05
    # compared with what the database can take: the test cluster has room
    assert e["database"] == "test" and e["database_free_for_pool"] >= e["recommended_total"]
    assert f"max_size={e['recommended_per_process']}" in f.recommendation

    # measured over a window inside a busy period, the pool is full the whole time: Little's
    # law gives its size as the load
    busy = threading.Thread(target=_load, args=(pool_app + "/small", 12, 4.0))
    busy.start()
    time.sleep(0.5)
    windowed = analyze_resources(config, parts=["pools"], window_s=2.0)
    busy.join()
    (w,) = found(windowed, "pool_saturation")
    assert "over the 2 s window" in w.detail
    assert 1.6 <= float(w.evidence["offered_load_connections"]) <= 2.05
    assert float(w.evidence["elapsed_s"]) == pytest.approx(2.0, abs=0.5)
    assert w.evidence["recommended_per_process"] == servers_for(
        float(w.evidence["offered_load_connections"]), 0.05
    )


def test_a_pool_the_database_cannot_grow_into_is_sent_to_pgbouncer() -> None:
    """Pure: the same sizing, with a database that has 3 slots left."""
    from datetime import UTC, datetime

    from opscope.resources.capacity import Capacity
    from opscope.resources.checks import PoolSaturation
    from opscope.resources.context import ResourcesContext

    samples = {
        ("db_client_connection_max", (("db_client_connection_pool_name", "p"),)): 4.0,
        ("db_client_connection_requests_total", (("db_client_connection_pool_name", "p"),)): 6000.0,
        ("db_client_connection_queued_total", (("db_client_connection_pool_name", "p"),)): 3000.0,
        ("db_client_connection_wait_time_seconds_total",
         (("db_client_connection_pool_name", "p"),)): 90.0,
        ("db_client_connection_use_time_seconds_total",
         (("db_client_connection_pool_name", "p"),)): 1140.0,
        ("opscope_db_pool_processes", (("db_client_connection_pool_name", "p"),)): 4.0,
        ("db_client_connection_count", (("db_client_connection_pool_name", "p"),
                                        ("db_client_connection_state", "used"))): 4.0,
    }  # fmt: skip
    (pool,) = pools_of("api", samples, 300.0)  # 20 checkouts/s x 190 ms = 3.8 busy
    assert pool.load == pytest.approx(3.8)
    ctx = ResourcesContext(
        target="h", now=datetime(2026, 1, 1, tzinfo=UTC), pools=[pool],
        capacity={"api": Capacity("main", 20, 3, 14, {})},
    )  # fmt: skip
    (f,) = PoolSaturation().run(ctx)
    # 4 workers with one connection each, 0.95 Erlang each: 3 connections would still make
    # 8.0% of checkouts wait (Erlang C), 4 make 2.0% wait
    assert erlang_c(3, 0.95) == pytest.approx(0.0801, abs=1e-4)
    assert f.evidence["recommended_per_process"] == 4
    assert f.evidence["recommended_total"] == 16
    # 3 slots free, and the 4 the pool holds itself
    assert f.evidence["database_free_for_pool"] == 3 + 4
    assert "PgBouncer" in f.recommendation


def test_erlang_c_matches_the_textbook() -> None:
    # 2 Erlangs on 3 servers: P(wait) = 4/9 (a classic worked example)
    assert erlang_c(3, 2.0) == pytest.approx(4 / 9)
    assert erlang_c(2, 2.0) == 1.0 and erlang_c(5, 0.0) == 0.0
    # 5 servers still make 5.97% of arrivals wait (32/120 x 5/3 over 7 + that), 6 make 1.8%
    assert erlang_c(5, 2.0) == pytest.approx((32 / 120 * 5 / 3) / (7 + 32 / 120 * 5 / 3))
    assert servers_for(2.0, 0.05) == 6
    sizing = size_pool(8.0, 4, 2, 0.05)
    assert sizing.per_process == 6 and sizing.total == 24 and sizing.wait_now == 1.0


# --- PgBouncer --------------------------------------------------------------------------


@pytest.fixture
def pgbouncer(db: SandboxDb, tmp_path: Path) -> Iterator[int]:
    """A real PgBouncer (Debian's package) on a free port, in front of the test database,
    with a pool of 2 server connections in transaction mode."""
    binary = Path("/usr/sbin/pgbouncer")
    if not binary.exists():
        pytest.fail("pgbouncer is not installed: run scripts/setup")
    # pytest's tmp_path is private to root; the server's user must read its files
    home = Path(tempfile.mkdtemp(prefix="opscope-pgbouncer-"))
    run_as = "postgres" if os.geteuid() == 0 else None  # it refuses to run as root
    if run_as:
        os.chown(home, pwd.getpwnam(run_as).pw_uid, -1)
    port = free_port()
    (home / "users.txt").write_text('"stats" ""\n"postgres" ""\n')
    (home / "pgbouncer.ini").write_text(
        f"[databases]\nshop = host=127.0.0.1 port={db.cluster.port} dbname={db.name} "
        "user=postgres pool_size=2\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {home}/users.txt\nstats_users = stats\n"
        f"pool_mode = transaction\nstats_period = 1\nlogfile = {home}/pgbouncer.log\n"
    )
    proc = subprocess.Popen([str(binary), str(home / "pgbouncer.ini")], user=run_as)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                psycopg.connect(f"postgresql://stats@127.0.0.1:{port}/pgbouncer").close()
                break
            except psycopg.OperationalError:
                assert proc.poll() is None and time.monotonic() < deadline, (
                    "pgbouncer never started"
                )
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(home, ignore_errors=True)


def _through(port: int, clients: int, seconds: float) -> list[threading.Thread]:
    def client() -> None:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/shop", autocommit=True) as c:
            c.execute(f"SELECT pg_sleep({seconds})".encode())

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    return threads


def _bouncer_report(port: int, db: SandboxDb, tmp: Path) -> Report:
    config = Config(
        sections={
            "resources": ResourceSettings(
                pgbouncer={"edge": PgBouncerTarget(
                    admin_dsn=f"postgresql://stats@127.0.0.1:{port}/pgbouncer", database=db.dsn
                )},
                thresholds=ResourceThresholds(pgbouncer_max_wait_s=0.5),
            )
        },
        state_dir=tmp,
    )  # fmt: skip
    return analyze_resources(config, parts=["pools"])


def test_pgbouncer_clients_waiting_for_a_server_connection(
    db: SandboxDb, pgbouncer: int, tmp_path: Path
) -> None:
    # the near miss: two clients on a pool of two
    quiet = _through(pgbouncer, 2, 1.5)
    time.sleep(1.0)
    calm = _bouncer_report(pgbouncer, db, tmp_path)
    for t in quiet:
        t.join()
    assert not calm.errors, calm.errors
    assert not found(calm, "pool_saturation")
    busy = _through(pgbouncer, 6, 2.5)
    time.sleep(1.2)
    report = _bouncer_report(pgbouncer, db, tmp_path)
    for t in busy:
        t.join()
    (f,) = found(report, "pool_saturation")
    assert f.object == "pgbouncer:edge/shop/postgres"
    assert f.evidence["pool_size"] == 2
    assert f.evidence["clients_waiting"] == 4 and f.evidence["clients_active"] == 2
    assert float(f.evidence["max_wait_s"]) >= 0.5
    assert f.evidence["pool_mode"] == "transaction"


def test_an_unreachable_pgbouncer_is_an_error_without_its_password(tmp_path: Path) -> None:
    port = free_port()
    config = Config(
        sections={"resources": ResourceSettings(pgbouncer={"edge": PgBouncerTarget(
            admin_dsn=f"postgresql://stats:pgb-s3cret@127.0.0.1:{port}/pgbouncer"
        )})},
        state_dir=tmp_path,
    )  # fmt: skip
    report = analyze_resources(config, parts=["pools"])
    (error,) = report.errors
    assert error.check == "pool_saturation"
    assert error.message.startswith(f"cannot connect to PgBouncer edge at 127.0.0.1:{port}/")
    assert "s3cret" not in report.to_json()

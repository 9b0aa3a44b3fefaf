"""Shared fixtures: one real PostgreSQL cluster per test run, a fresh database per test, and
the situations opscope detects, made by real second sessions: one holding a lock, one left
idle in a transaction, one running a long query (`situations`). Every area's tests use
them, as pg_activity's do."""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import settings

from airflow_tier.deployment import Deployment, prepare
from airflow_tier.venvs import VERSIONS as AIRFLOW_VERSIONS
from opscope.db.analyze import analyze_database
from opscope.db.sandbox import DEFAULT_VERSION, Sandbox
from opscope.db.settings import DbThresholds, PostgresSettings, postgres_config
from opscope.findings import Finding, Report

# Timing is the benchmarks' business: on a loaded 2-core CI machine a first example can take
# longer than hypothesis' 200 ms default without anything being wrong.
settings.register_profile("opscope", deadline=None)
settings.load_profile("opscope")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--pg",
        default=os.environ.get("OPSCOPE_PG_VERSIONS", str(DEFAULT_VERSION)),
        help="PostgreSQL majors the database tests run on, comma-separated (scripts/test: "
        "15,18); also OPSCOPE_PG_VERSIONS",
    )


def pg_versions(config: pytest.Config) -> list[int]:
    text = str(config.getoption("--pg"))
    try:
        return sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise pytest.UsageError(f"--pg: not a list of PostgreSQL majors: {text!r}") from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test on the real cluster runs once per version asked for; `pg(N, ...)` keeps a
    test to the versions it is about."""
    if "cluster" not in metafunc.fixturenames:
        return
    versions = pg_versions(metafunc.config)
    marker = metafunc.definition.get_closest_marker("pg")
    if marker is not None:
        versions = [v for v in versions if any(v >= int(m) for m in marker.args[:1])]
        if len(marker.args) > 1:
            versions = [v for v in versions if v <= int(marker.args[1])]
    metafunc.parametrize(
        "pg_version",
        versions,
        indirect=True,
        scope="session",
        ids=[f"pg{v}" for v in versions],
    )


@pytest.fixture(scope="session")
def pg_version(request: pytest.FixtureRequest) -> int:
    return int(getattr(request, "param", DEFAULT_VERSION))


@pytest.fixture(scope="session")
def cluster(pg_version: int) -> Iterator[Sandbox]:
    box = Sandbox.create(version=pg_version)
    try:
        box.start()
        yield box
    finally:
        box.stop()


@pytest.fixture(
    scope="session", params=AIRFLOW_VERSIONS, ids=[f"airflow-{v}" for v in AIRFLOW_VERSIONS]
)
def airflow(
    request: pytest.FixtureRequest, cluster: Sandbox, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """A real Airflow deployment of each version (tests/airflow_tier): its metadata database in
    the test cluster holds the runs of the tier's DAGs. Integration tier only."""
    deployment = prepare(cluster, request.param, tmp_path_factory.mktemp("airflow"))
    how = (
        f"generated in {deployment.generated_s:.0f} s"
        if deployment.generated_s is not None
        else f"restored in {deployment.restored_s:.1f} s"
    )
    print(f"\nAirflow {deployment.version}: metadata {how}", file=sys.stderr)
    try:
        yield deployment
    finally:
        deployment.stop_all()


@pytest.fixture(scope="session")
def airflow_api(airflow: Deployment) -> str:
    return airflow.api_url or airflow.serve_api()


@pytest.fixture(autouse=True)
def _needs_extensions(request: pytest.FixtureRequest) -> None:
    """`@pytest.mark.needs("hypopg")`: skipped on a server without the extension (Debian
    packages hypopg and pg_qualstats for its own PostgreSQL only; see README)."""
    marker = request.node.get_closest_marker("needs")
    if marker is None or "cluster" not in request.fixturenames:
        return
    box: Sandbox = request.getfixturevalue("cluster")
    missing = [name for name in marker.args if not box.has_extension(name)]
    if missing:
        pytest.skip(f"PostgreSQL {box.version} here has no {', '.join(missing)}")


@dataclass
class SandboxDb:
    cluster: Sandbox
    name: str
    state_dir: Path

    @property
    def dsn(self) -> str:
        return self.cluster.dsn(self.name)

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn, autocommit=True, **kwargs)

    def execute(self, *statements: str) -> None:
        with self.connect() as conn:
            for stmt in statements:
                conn.execute(stmt.encode())
                # flushed after each statement, as separate sessions would be; otherwise
                # counters of an INSERT land after a following ANALYZE has reset them
                flush_stats(conn)

    def analyze(self, **thresholds: Any) -> Report:
        """Run `opscope analyze db` the way the CLI does, with thresholds overridden."""
        settings = PostgresSettings(thresholds=DbThresholds(**thresholds))
        return analyze_database(postgres_config(settings, state_dir=self.state_dir), self.dsn)


def flush_stats(conn: psycopg.Connection[Any]) -> None:
    """Make this session's pending table and index counters visible to other sessions now
    (PostgreSQL 15 otherwise flushes them up to a second later, or at disconnect)."""
    conn.execute("SELECT pg_stat_force_next_flush()")


@pytest.fixture
def db(cluster: Sandbox, tmp_path: Path) -> Iterator[SandboxDb]:
    name = "t_" + uuid.uuid4().hex[:12]
    cluster.psql(f"CREATE DATABASE {name}")
    extensions = "CREATE EXTENSION pg_stat_statements"
    if cluster.has_extension("hypopg"):
        extensions += "; CREATE EXTENSION hypopg"
    cluster.psql(extensions, dbname=name)
    try:
        yield SandboxDb(cluster, name, tmp_path / "state")
    finally:
        cluster.psql(f"DROP DATABASE {name} WITH (FORCE)")


def found(report: Report, check: str, obj: str | None = None) -> list[Finding]:
    return [f for f in report.findings if f.check == check and (obj is None or f.object == obj)]


def objects(report: Report, check: str) -> set[str]:
    return {f.object for f in report.findings if f.check == check}


@dataclass
class Session:
    """A second session of a situation, until `release()` (or the end of the test)."""

    conn: psycopg.Connection[Any]
    pid: int
    _release: Callable[[], None]
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._release()

    def release_after(self, seconds: float) -> threading.Timer:
        """End it from another thread `seconds` from now (a blocker the code under test waits
        for, and that must end for it to finish)."""
        timer = threading.Timer(seconds, self.release)
        timer.start()
        return timer


@dataclass
class Situations:
    """Second sessions on one database that create what opscope detects. Each is released
    at the end of the test at the latest; `release()` ends one earlier."""

    dsn: str
    sessions: list[Session] = field(default_factory=list)

    def _open(self) -> tuple[psycopg.Connection[Any], int]:
        conn = psycopg.connect(self.dsn, autocommit=True)
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert pid is not None
        return conn, int(pid[0])

    def _session(self, conn: psycopg.Connection[Any], pid: int, end: Callable[[], None]) -> Session:
        def release() -> None:
            try:
                end()
            finally:
                conn.close()

        session = Session(conn, pid, release)
        self.sessions.append(session)
        return session

    def idle_in_transaction(self, *statements: str, isolation: str = "") -> Session:
        """A transaction that ran `statements` and waits, open: it holds their row and table
        locks and, with `isolation` REPEATABLE READ, a snapshot (what CREATE INDEX
        CONCURRENTLY and vacuum wait for)."""
        conn, pid = self._open()
        conn.execute(f"BEGIN {('ISOLATION LEVEL ' + isolation) if isolation else ''}".encode())
        for statement in statements:
            conn.execute(statement.encode())

        def rollback() -> None:
            conn.execute("ROLLBACK")

        return self._session(conn, pid, rollback)

    def lock(self, table: str, mode: str = "ACCESS EXCLUSIVE") -> Session:
        """A transaction holding `mode` on `table`, as VACUUM FULL, ALTER TABLE or a
        maintenance job would."""
        return self.idle_in_transaction(f"LOCK TABLE {table} IN {mode} MODE")

    def long_query(self, query: str = "SELECT pg_sleep(600)") -> Session:
        """`query` running in its own session (in a thread) until released, which cancels it.
        Returns once the server shows it active."""
        conn, pid = self._open()
        done = threading.Event()

        def run() -> None:
            try:
                conn.execute(query.encode())
            except psycopg.errors.QueryCanceled:
                pass
            finally:
                done.set()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        with psycopg.connect(self.dsn, autocommit=True) as watcher:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                row = watcher.execute(
                    "SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,)
                ).fetchone()
                if row is not None and row[0] == "active":
                    break
                time.sleep(0.02)
            else:
                raise AssertionError(f"the long query never started: {query}")

        def cancel() -> None:
            with psycopg.connect(self.dsn, autocommit=True) as other:
                other.execute("SELECT pg_cancel_backend(%s)", (pid,))
            done.wait(30)
            thread.join(30)

        return self._session(conn, pid, cancel)

    def release_all(self) -> None:
        for session in reversed(self.sessions):
            session.release()


@pytest.fixture
def situations(db: SandboxDb) -> Iterator[Situations]:
    made = Situations(db.dsn)
    try:
        yield made
    finally:
        made.release_all()


@pytest.fixture
def lock_holder(situations: Situations) -> Callable[..., Session]:
    """`lock_holder("t")`: a second session holding ACCESS EXCLUSIVE (or `mode`) on t."""
    return situations.lock


@pytest.fixture
def idle_in_transaction(situations: Situations) -> Callable[..., Session]:
    """`idle_in_transaction("INSERT ...")`: a session that ran these and stays open."""
    return situations.idle_in_transaction


@pytest.fixture
def long_query(situations: Situations) -> Callable[..., Session]:
    """`long_query("SELECT pg_sleep(600)")`: running until released, then cancelled."""
    return situations.long_query


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Any]:
    """A redis-server of the test's own on a free port (tests/redis_server.py)."""
    from redis_server import RedisServer

    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.kill()

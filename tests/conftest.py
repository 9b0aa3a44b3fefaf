"""Shared fixtures: one real PostgreSQL cluster per test run, a fresh database per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import settings

from opscope.db.analyze import analyze_database
from opscope.db.sandbox import Sandbox
from opscope.db.settings import DbThresholds, PostgresSettings, postgres_config
from opscope.findings import Finding, Report

# Timing is the benchmarks' business: on a loaded 2-core CI machine a first example can take
# longer than hypothesis' 200 ms default without anything being wrong.
settings.register_profile("opscope", deadline=None)
settings.load_profile("opscope")


@pytest.fixture(scope="session")
def cluster() -> Iterator[Sandbox]:
    box = Sandbox.create()
    try:
        box.start()
        yield box
    finally:
        box.stop()


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
    cluster.psql("CREATE EXTENSION pg_stat_statements; CREATE EXTENSION hypopg", dbname=name)
    try:
        yield SandboxDb(cluster, name, tmp_path / "state")
    finally:
        cluster.psql(f"DROP DATABASE {name} WITH (FORCE)")


def found(report: Report, check: str, obj: str | None = None) -> list[Finding]:
    return [f for f in report.findings if f.check == check and (obj is None or f.object == obj)]


def objects(report: Report, check: str) -> set[str]:
    return {f.object for f in report.findings if f.check == check}

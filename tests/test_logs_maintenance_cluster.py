"""`autovacuum_slow` and `checkpoints_too_frequent` from the log of a real cluster.

A busy cluster (max_wal_size 32MB, every autovacuum logged) writes enough WAL to force
checkpoints and autovacuums a table whose cost-based delay throttles it, beside one that
vacuums at the default pace; a quiet cluster only takes manual and shutdown checkpoints.
Each runs on every PostgreSQL version the suite is given (OPSCOPE_PG_VERSIONS=15,18).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conftest import pg_versions
from opscope.config import Config
from opscope.db.logs.analyze import analyze_logs
from opscope.db.logs.options import LogOptions
from opscope.db.sandbox import Sandbox
from opscope.findings import Report
from opscope.report import render

#: a vacuum of the throttled table takes seconds, of the other a few milliseconds
SLOW_S = 1.0
LOGGING = {
    "logging_collector": "on",
    "log_destination": "'stderr,csvlog,jsonlog'",
    "log_directory": "'log'",
    "log_filename": "'pg.log'",
    "log_line_prefix": "'%m [%p] %q%u@%d app=%a '",
    "log_autovacuum_min_duration": "0",
    "log_checkpoints": "on",
    "checkpoint_timeout": "'1h'",
}
BUSY = {
    **LOGGING,
    "max_wal_size": "'32MB'",
    "min_wal_size": "'32MB'",
    "autovacuum_naptime": "1",
    "autovacuum_vacuum_threshold": "50",
    "autovacuum_vacuum_scale_factor": "0.01",
    "autovacuum_analyze_threshold": "50",
    "autovacuum_analyze_scale_factor": "0.01",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "pg_version" in metafunc.fixturenames and "cluster" not in metafunc.fixturenames:
        versions = pg_versions(metafunc.config)
        metafunc.parametrize(
            "pg_version", versions, indirect=True, scope="module", ids=[f"pg{v}" for v in versions]
        )


@dataclass
class MaintenanceLog:
    box: Sandbox

    def file(self, suffix: str) -> Path:
        return self.box.datadir / "log" / f"pg.{suffix}"


def _wait_for_autovacuum(conn: psycopg.Connection[Any], tables: list[str]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        row = conn.execute(
            "select count(*) from pg_stat_user_tables where relname = any(%s) "
            "and autovacuum_count > 0",
            (tables,),
        ).fetchone()
        if row is not None and row[0] == len(tables):
            return
        time.sleep(0.5)
    raise AssertionError(f"autovacuum did not run on {tables} in 90 s")


@pytest.fixture(scope="module")
def busy(pg_version: int) -> Iterator[MaintenanceLog]:
    box = Sandbox.create(settings=BUSY, version=pg_version)
    try:
        box.start()
        with psycopg.connect(box.dsn(), autocommit=True) as conn:
            conn.execute("create schema shop")
            # throttled: 50 ms of sleep for every 10 pages it reads from shared buffers
            conn.execute(
                "create table shop.slow_vacuum (id int primary key, pad text) with "
                "(autovacuum_vacuum_cost_delay = 50, autovacuum_vacuum_cost_limit = 10)"
            )
            conn.execute(
                "insert into shop.slow_vacuum select g, repeat('x', 200) "
                "from generate_series(1, 2000) g"
            )
            conn.execute("create table shop.quick (id int primary key, pad text)")
            conn.execute("insert into shop.quick select g, 'y' from generate_series(1, 400) g")
            # WAL volume without a vacuum of its own
            conn.execute(
                "create table shop.events (id int, pad text) with (autovacuum_enabled = off)"
            )
            for _ in range(6):
                conn.execute(
                    "insert into shop.events select g, repeat('e', 500) "
                    "from generate_series(1, 20000) g"
                )
            conn.execute("delete from shop.slow_vacuum where id % 2 = 0")
            conn.execute("delete from shop.quick where id % 2 = 0")
            _wait_for_autovacuum(conn, ["slow_vacuum", "quick"])
        # stopped, so the log is complete (the last checkpoint finished, the shutdown one)
        box.stop(remove=False)
        yield MaintenanceLog(box)
    finally:
        box.stop()


@pytest.fixture(scope="module")
def quiet(pg_version: int) -> Iterator[MaintenanceLog]:
    box = Sandbox.create(settings=LOGGING, version=pg_version)
    try:
        box.start()
        with psycopg.connect(box.dsn(), autocommit=True) as conn:
            conn.execute("create table notes (id int, body text)")
            conn.execute("insert into notes select g, 'n' from generate_series(1, 1000) g")
            conn.execute("checkpoint")
            conn.execute("insert into notes select g, 'm' from generate_series(1, 1000) g")
            conn.execute("checkpoint")
        box.stop(remove=False)
        yield MaintenanceLog(box)
    finally:
        box.stop()


def _analyze(path: Path) -> Report:
    return analyze_logs(Config(), [str(path)], LogOptions(autovacuum_slow_s=SLOW_S))


def _found(report: Report, check: str) -> list[Any]:
    return [f for f in report.findings if f.check == check]


def test_busy_cluster_gets_both_findings_with_their_setting(busy: MaintenanceLog) -> None:
    report = _analyze(busy.file("log"))
    busy.box.resume()  # the fixes are run on the server they are for
    try:
        _check_findings(busy, report)
    finally:
        busy.box.stop(remove=False)


def _check_findings(busy: MaintenanceLog, report: Report) -> None:
    with psycopg.connect(busy.box.dsn(), autocommit=True) as conn:
        slow = _found(report, "autovacuum_slow")
        assert [(f.object, f.evidence["database"]) for f in slow] == [
            ("shop.slow_vacuum", "postgres")
        ], [f.title for f in slow]
        finding = slow[0]
        assert finding.evidence["vacuum_max_s"] >= SLOW_S
        assert finding.evidence["tuples_removed"] >= 1000  # the half that was deleted
        # the run was asleep, not working: the cost-based delay is the setting to change
        assert finding.evidence["waiting_share"] > 0.5
        assert finding.fix_sql is not None
        assert finding.fix_sql.startswith(
            "ALTER TABLE shop.slow_vacuum SET (autovacuum_vacuum_cost_limit = 2000"
        )
        conn.execute(finding.fix_sql)  # the fix is SQL the server takes
        options = conn.execute(
            "select reloptions from pg_class where oid = 'shop.slow_vacuum'::regclass"
        ).fetchone()
        assert options is not None and "autovacuum_vacuum_cost_limit=2000" in options[0]

        frequent = _found(report, "checkpoints_too_frequent")
        assert [f.object for f in frequent] == ["max_wal_size"]
        evidence = frequent[0].evidence
        assert evidence["by_trigger"]["wal"] >= 2
        # what max_wal_size is now, read back from the WAL between forced checkpoints
        assert 8 <= evidence["max_wal_size_now_mb"] <= 128
        fix = frequent[0].fix_sql
        assert fix is not None and fix.startswith("ALTER SYSTEM SET max_wal_size = '")
        for statement in fix.split(";\n"):
            conn.execute(statement.rstrip(";"))
        wanted = str(evidence["max_wal_size"])
        mb = int(wanted[:-2]) * (1024 if wanted.endswith("GB") else 1)
        # pg_settings gives max_wal_size in MB (its unit) once the reload reached us
        deadline = time.monotonic() + 10
        while True:
            row = conn.execute(
                "select setting::bigint, unit from pg_settings where name = 'max_wal_size'"
            ).fetchone()
            if row == (mb, "MB") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert row == (mb, "MB")


def test_busy_cluster_summary_in_every_format(busy: MaintenanceLog) -> None:
    stderr = _analyze(busy.file("log"))
    csvlog = _analyze(busy.file("csv"))
    jsonlog = _analyze(busy.file("json"))
    # in small chunks over two worker processes: checkpoints that a chunk boundary splits
    # from their completion are folded in order all the same
    parallel = analyze_logs(
        Config(),
        [str(busy.file("log"))],
        LogOptions(autovacuum_slow_s=SLOW_S, jobs=2, chunk_bytes=2048),
    )
    for report in (stderr, csvlog, jsonlog, parallel):
        found = report.summary["log"]["maintenance"]
        tables = {t["table"]: t for t in found["autovacuum"]["by_table"]}
        assert tables["shop.slow_vacuum"]["vacuums"] >= 1
        assert tables["shop.slow_vacuum"]["tuples_removed"] >= 1000
        assert tables["shop.quick"]["vacuum_max_s"] < SLOW_S
        assert "shop.events" not in tables
        checkpoints = found["checkpoints"]
        assert checkpoints["by_trigger"]["wal"] >= 2
        assert checkpoints["completed"] >= checkpoints["by_trigger"]["wal"]
    expected = stderr.summary["log"]["maintenance"]
    for other in (csvlog, jsonlog, parallel):
        assert other.summary["log"]["maintenance"] == expected
    assert parallel.summary["log"]["jobs"] == 2
    assert {f.id for f in parallel.findings} == {f.id for f in stderr.findings}
    text = render(stderr, "terminal")
    assert "Autovacuum (" in text and "shop.slow_vacuum" in text
    assert "checkpoints: " in text
    markdown = render(stderr, "markdown")
    assert "### Autovacuum and checkpoints" in markdown and "shop.slow_vacuum" in markdown
    html = render(stderr, "html")
    assert "autovacuum and checkpoints" in html and "shop.slow_vacuum" in html


def test_quiet_cluster_has_no_checkpoints_too_frequent(quiet: MaintenanceLog) -> None:
    report = _analyze(quiet.file("log"))
    checkpoints = report.summary["log"]["maintenance"]["checkpoints"]
    # the manual CHECKPOINTs and the shutdown were logged, and are no sign of a small WAL
    assert checkpoints["by_trigger"]["requested"] >= 2
    assert checkpoints["by_trigger"]["shutdown"] >= 1
    assert checkpoints["by_trigger"]["wal"] == 0
    assert not _found(report, "checkpoints_too_frequent")
    assert not _found(report, "autovacuum_slow")

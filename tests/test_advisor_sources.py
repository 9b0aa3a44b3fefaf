"""`opscope indexes advise` from every workload source: pg_stat_statements, --statement,
--sql-file, --log (a file, or stdin) and --activity give the same index for the same
workload; --min-calls and --min-time filter it; --watch advises again as it changes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from opscope.db.sandbox import Sandbox

WORKLOAD = "SELECT * FROM orders WHERE customer_id = %s"
FIX = "CREATE INDEX CONCURRENTLY orders_customer_id_idx ON public.orders (customer_id);"


@pytest.fixture(scope="module")
def logged(cluster: Sandbox) -> Iterator[Sandbox]:
    """A cluster of the same version that logs every statement with its database (%d)."""
    box = Sandbox.create(
        version=cluster.version,
        settings={
            "logging_collector": "on",
            "log_directory": "'log'",
            "log_filename": "'pg.log'",
            "log_min_duration_statement": "0",
            "log_line_prefix": "'%m [%p] %q%u@%d '",
        },
    )
    try:
        box.start()
        yield box
    finally:
        box.stop()


@pytest.fixture
def shop(logged: Sandbox) -> Iterator[str]:
    name = "shop_" + uuid.uuid4().hex[:8]
    logged.psql(f"CREATE DATABASE {name}")
    extensions = "CREATE EXTENSION pg_stat_statements"
    if logged.has_extension("hypopg"):
        extensions += "; CREATE EXTENSION hypopg"
    logged.psql(extensions, dbname=name)
    with psycopg.connect(logged.dsn(name), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE orders (id int PRIMARY KEY, customer_id int, total int, note text);"
            "INSERT INTO orders SELECT g, g % 5000, g, 'n' FROM generate_series(1, 60000) g;"
            "ANALYZE orders"
        )
        conn.execute("SELECT pg_stat_reset(), pg_stat_statements_reset()")
    try:
        yield name
    finally:
        logged.psql(f"DROP DATABASE {name} WITH (FORCE)")


def log_path(box: Sandbox) -> Path:
    return box.datadir / "log" / "pg.log"


def workload(dsn: str, calls: int = 40) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for c in range(calls):
            conn.execute(WORKLOAD, [c]).fetchall()


def advise(dsn: str, *args: str, stdin: str | None = None) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "opscope", "indexes", "advise", dsn, "-f", "json", *args],
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin,
    )
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def fixes(report: dict[str, Any]) -> list[str]:
    return [f["fix_sql"] for f in report["findings"] if f["check"] == "missing_index"]


def calls_of(report: dict[str, Any]) -> list[int]:
    [f] = [f for f in report["findings"] if f["check"] == "missing_index"]
    return [s["calls"] for s in f["evidence"]["statements"]]


def test_every_source_gives_the_index_pg_stat_statements_gives(
    logged: Sandbox, shop: str, tmp_path: Path
) -> None:
    dsn = logged.dsn(shop)
    workload(dsn)
    from_pgss = advise(dsn)
    assert fixes(from_pgss) == [FIX]
    # the log: same statements, weighed by their logged calls
    from_log = advise(dsn, "--log", str(log_path(logged)))
    assert fixes(from_log) == [FIX]
    assert calls_of(from_log) == calls_of(from_pgss) == [40]
    # the log on stdin
    assert fixes(advise(dsn, "--log", "-", stdin=log_path(logged).read_text())) == [FIX]
    # one statement, and a file of them
    assert fixes(advise(dsn, "--statement", "SELECT * FROM orders WHERE customer_id = 7")) == [FIX]
    sql = tmp_path / "workload.sql"
    sql.write_text(
        "SELECT * FROM orders WHERE customer_id = 7;\n-- and another\nSELECT id FROM orders "
        "WHERE total = 5;\n"
    )
    from_file = fixes(advise(dsn, "--sql-file", str(sql)))
    assert FIX in from_file and len(from_file) == 2


def test_a_log_of_another_database_is_not_this_workload(logged: Sandbox, shop: str) -> None:
    other = "other_" + uuid.uuid4().hex[:8]
    logged.psql(f"CREATE DATABASE {other}")
    try:
        with psycopg.connect(logged.dsn(other), autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE orders (id int, customer_id int, total int, note text);"
                "SELECT * FROM orders WHERE note = 'x'"
            )
        workload(logged.dsn(shop), calls=5)
        report = advise(logged.dsn(shop), "--log", str(log_path(logged)))
        queries = [
            s["query"] for f in report["findings"] for s in f["evidence"].get("statements", [])
        ]
        assert queries and not [q for q in queries if "note" in q]
    finally:
        logged.psql(f"DROP DATABASE {other} WITH (FORCE)")


def test_min_calls_and_min_time_filter_the_workload(logged: Sandbox, shop: str) -> None:
    dsn = logged.dsn(shop)
    workload(dsn, calls=40)
    path = str(log_path(logged))
    assert fixes(advise(dsn, "--log", path, "--min-calls", "40")) == [FIX]
    assert fixes(advise(dsn, "--log", path, "--min-calls", "41")) == []
    assert fixes(advise(dsn, "--min-calls", "41")) == []  # pg_stat_statements too
    assert fixes(advise(dsn, "--log", path, "--min-time", "1h")) == []
    assert fixes(advise(dsn, "--log", path, "--min-time", "0ms")) == [FIX]


def test_sampled_activity_is_a_workload(logged: Sandbox, shop: str) -> None:
    dsn = logged.dsn(shop)
    stop = threading.Event()

    def busy() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not stop.is_set():
                # slow enough to be caught by a sample, and a filter the index serves
                conn.execute(
                    "SELECT count(*) FROM orders o, pg_sleep(0.2) WHERE o.customer_id = 7"
                ).fetchall()

    thread = threading.Thread(target=busy, daemon=True)
    thread.start()
    try:
        report = advise(dsn, "--activity", "2s")
    finally:
        stop.set()
        thread.join(10)
    [f] = [f for f in report["findings"] if f["check"] == "missing_index"]
    assert f["columns"] == ["customer_id"]
    assert f["evidence"]["statements"][0]["calls"] >= 3


def test_bad_sources_are_one_line(logged: Sandbox, shop: str, tmp_path: Path) -> None:
    dsn = logged.dsn(shop)
    for args in (
        ["--sql-file", str(tmp_path / "missing.sql")],
        ["--log", str(tmp_path / "missing.log")],
        ["--statement", "SELEC oops FROM"],
        ["--activity", "soon"],
        ["--watch", "0s"],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "opscope", "indexes", "advise", dsn, *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and proc.stderr.count("\n") <= 6, proc.stderr


def test_watch_advises_again_when_the_workload_changes(logged: Sandbox, shop: str) -> None:
    dsn = logged.dsn(shop)
    reports: list[dict[str, Any]] = []
    with subprocess.Popen(
        [sys.executable, "-m", "opscope", "indexes", "advise", dsn, "-f", "json", "--watch", "1s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        reader = threading.Thread(target=_read_reports, args=(proc, reports), daemon=True)
        reader.start()
        try:
            _until(lambda: len(reports) >= 1, 60)
            assert fixes(reports[0]) == []  # nothing ran yet
            workload(dsn)
            _until(lambda: len(reports) >= 2, 60)
            assert fixes(reports[1]) == [FIX]
        finally:
            proc.terminate()
            proc.wait(30)
            reader.join(30)


def _read_reports(proc: subprocess.Popen[str], into: list[dict[str, Any]]) -> None:
    assert proc.stdout is not None
    buffer = ""
    for line in proc.stdout:
        buffer += line
        if line.rstrip("\n") == "}":
            into.append(json.loads(buffer))
            buffer = ""


def _until(done: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)

"""`opscope explain --log`: plan a normalized statement with the values of its slowest logged
execution, on a real cluster that logs every statement."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from opscope.db.logs.examples import parse_parameters
from opscope.db.sandbox import Sandbox


@pytest.fixture(scope="module")
def logging_cluster() -> Iterator[Sandbox]:
    box = Sandbox.create(
        settings={
            "logging_collector": "on",
            "log_directory": "'log'",
            "log_filename": "'pg.log'",
            "log_min_duration_statement": "0",
            "log_line_prefix": "'%m [%p] %q%u@%d '",
        }
    )
    try:
        box.start()
        box.psql("CREATE DATABASE app")
        with psycopg.connect(box.dsn("app"), autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE t (id int PRIMARY KEY, kind text);"
                "INSERT INTO t SELECT g, CASE WHEN g % 100 = 0 THEN 'rare' ELSE 'common' END"
                " FROM generate_series(1, 100000) g;"
                "CREATE INDEX t_kind ON t (kind); ANALYZE t"
            )
            # bound parameters (extended protocol): the log has DETAIL: parameters
            for kind in ("rare", "common", "rare"):
                conn.execute("SELECT count(*) FROM t WHERE kind = %s", [kind]).fetchall()
            # literal text (simple protocol): the log has the values in the statement
            conn.execute(b"SELECT max(id) FROM t WHERE kind = 'common' AND id > 10").fetchall()
            conn.execute(b"SELECT max(id) FROM t WHERE kind = 'rare' AND id > 10").fetchall()
            # someone else's statement with a secret in it, as the log keeps it
            conn.execute(
                b"SELECT count(*) FROM t WHERE kind <> 'host=db password=Zebra7Secret user=app'"
            ).fetchall()
        yield box
    finally:
        box.stop()


def explain_json(box: Sandbox, query: str, *extra: str) -> dict[str, object]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "opscope",
            "explain",
            box.dsn("app"),
            query,
            "-f",
            "json",
            "--log",
            str(box.datadir / "log" / "pg.log"),
            *extra,
        ],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    data: dict[str, object] = json.loads(proc.stdout)
    return data


def _plan(data: dict[str, object]) -> dict[str, object]:
    summary = data["summary"]
    assert isinstance(summary, dict)
    plan: dict[str, object] = summary["app"]["plan"]
    return plan


def test_bound_parameters_of_the_slowest_execution(logging_cluster: Sandbox) -> None:
    plan = _plan(explain_json(logging_cluster, "SELECT count(*) FROM t WHERE kind = $1"))
    assert plan["analyzed"] is True and plan["generic_plan"] is False
    assert str(plan["values_from_log"]).startswith("values from the slowest logged execution")
    # the slowest execution was the one for 'common': 99,000 rows counted, not 1,000
    assert "rows=99,000" in str(plan["tree"]) or "rows=99000" in str(plan["tree"])


def test_literal_text_of_the_slowest_execution(logging_cluster: Sandbox) -> None:
    plan = _plan(explain_json(logging_cluster, "SELECT max(id) FROM t WHERE kind = $1 AND id > $2"))
    assert plan["analyzed"] is True
    assert plan["query"] == "SELECT max(id) FROM t WHERE kind = 'common' AND id > 10"
    assert "as logged" in str(plan["values_from_log"])


def test_statement_missing_from_the_log_gets_a_generic_plan(logging_cluster: Sandbox) -> None:
    plan = _plan(explain_json(logging_cluster, "SELECT id FROM t WHERE id = $1"))
    assert plan["generic_plan"] is True and plan["analyzed"] is False
    assert plan["values_from_log"] == "not found in the log: generic plan"


def test_missing_log_file_is_a_one_line_error(logging_cluster: Sandbox, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "opscope",
            "explain",
            logging_cluster.dsn("app"),
            "SELECT 1",
            "--log",
            str(tmp_path / "nope.log"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "nope.log" in proc.stderr


def test_parameter_lists() -> None:
    assert parse_parameters("$1 = 'ab''c', $2 = '7'") == ("ab'c", "7")
    assert parse_parameters("$1 = NULL, $2 = ''") == (None, "")
    assert parse_parameters("$2 = 'x'") is None  # $1 missing
    assert parse_parameters("$1 = 'cut off...'") is None  # log_parameter_max_length
    assert parse_parameters("$1 = 'x' trailing") is None


@given(st.lists(st.one_of(st.none(), st.text(max_size=20)), min_size=1, max_size=6))
def test_parameter_lists_round_trip(values: list[str | None]) -> None:
    text = ", ".join(
        f"${i} = NULL" if v is None else f"${i} = '" + v.replace("'", "''") + "'"
        for i, v in enumerate(values, start=1)
    )
    parsed = parse_parameters(text)
    if any(v is not None and v.endswith("...") for v in values):
        assert parsed is None
    else:
        assert parsed == tuple(values)


def test_a_logged_secret_is_masked_in_the_plan_and_the_findings(
    logging_cluster: Sandbox,
) -> None:
    data = explain_json(logging_cluster, "SELECT count(*) FROM t WHERE kind <> $1")
    plan = _plan(data)
    assert "as logged" in str(plan["values_from_log"])
    # planned with the real text (EXPLAIN VERBOSE repeats the constant), shown masked
    assert "password=********" in str(plan["query"]) and "password=********" in str(plan["tree"])
    for fmt in ("json", "terminal", "markdown", "html"):
        proc = subprocess.run(
            [
                sys.executable, "-m", "opscope", "explain", logging_cluster.dsn("app"),
                "SELECT count(*) FROM t WHERE kind <> $1", "-f", fmt,
                "--log", str(logging_cluster.datadir / "log" / "pg.log"),
            ],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert "Zebra7Secret" not in proc.stdout + proc.stderr, fmt

"""EXPLAIN never changes the watched database: attacks a reviewer found, on a real cluster.

Each one hides a side effect where the statement's text does not show it (a view, an
operator, attribute notation, a shadowing function) or smuggles a second statement past our
parser; opscope must explain without running it, and the side effect must not happen.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from conftest import SandboxDb
from opscope.db.plans.explain import _explain_generic


def explain(db: SandboxDb, query: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opscope", "explain", db.dsn, query, "-f", "json", *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )


def audit_rows(db: SandboxDb) -> int:
    with db.connect() as conn:
        row = conn.execute("SELECT count(*) FROM audit").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def trapped(db: SandboxDb) -> SandboxDb:
    """A database whose objects write to `audit` through dblink (a second, writable
    session that opscope's read-only setting does not cover)."""
    remote = f"host=127.0.0.1 port={db.cluster.port} dbname={db.name} user=postgres"
    write = f"dblink_exec('{remote}', 'INSERT INTO audit VALUES (1)')"  # noqa: S608
    db.execute(
        "CREATE EXTENSION dblink",
        "CREATE TABLE audit (id int)",
        "CREATE TABLE tt (a int)",
        "INSERT INTO tt VALUES (1)",
        f"CREATE VIEW v_write AS SELECT {write} AS d",
        "CREATE FUNCTION bad(int, int) RETURNS bool VOLATILE LANGUAGE sql AS "
        f"$$ SELECT {write} IS NOT NULL $$",
        "CREATE OPERATOR === (leftarg = int, rightarg = int, function = bad)",
        f"CREATE FUNCTION side(tt) RETURNS text VOLATILE LANGUAGE sql AS $$ SELECT {write} $$",
        "CREATE FUNCTION public.random() RETURNS int VOLATILE LANGUAGE sql AS "
        f"$$ SELECT length({write}) * 0 $$",
    )
    return db


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM v_write",
        "SELECT 1 === 2",
        "SELECT tt.side FROM tt",
        "SELECT public.random()",
    ],
)
def test_hidden_side_effects_are_not_run(trapped: SandboxDb, query: str) -> None:
    proc = explain(trapped, query)
    assert proc.returncode == 0, proc.stderr
    plan = next(iter(json.loads(proc.stdout)["summary"].values()))["plan"]
    assert plan["analyzed"] is False
    assert "not run (no ANALYZE)" in plan["note"]
    assert audit_rows(trapped) == 0


def test_plain_reads_are_still_analyzed(trapped: SandboxDb) -> None:
    proc = explain(trapped, "SELECT count(*), max(a), now() FROM tt WHERE a BETWEEN 0 AND 5")
    plan = next(iter(json.loads(proc.stdout)["summary"].values()))["plan"]
    assert plan["analyzed"] is True, plan["note"]


@pytest.mark.parametrize("placeholder", ["", "$1, "], ids=["plain", "generic-plan"])
def test_a_second_statement_cannot_be_smuggled_in(db: SandboxDb, placeholder: str) -> None:
    # with standard_conforming_strings off the server reads 'a\' differently from the
    # parser we check with: the rest of the text would become statements of their own; a
    # placeholder takes the text through EXPLAIN (GENERIC_PLAN) on 16+, sent as a simple query
    db.execute(
        f"ALTER DATABASE {db.name} SET standard_conforming_strings = off",
        "CREATE TABLE victim (id int)",
        "INSERT INTO victim VALUES (1), (2)",
    )
    smuggled = "'; COMMIT; BEGIN READ WRITE; DELETE FROM victim; COMMIT; -- "
    payload = "SELECT " + placeholder + "'a\\', $$" + smuggled + "$$"
    explain(db, payload, "--no-analyze")
    with db.connect() as conn:
        row = conn.execute("SELECT count(*) FROM victim").fetchone()
    assert row is not None and row[0] == 2


def test_a_timeout_is_one_line_not_a_traceback(db: SandboxDb, tmp_path: Path) -> None:
    cfg = tmp_path / "opscope.yaml"
    cfg.write_text("postgresql:\n  session:\n    statement_timeout_ms: 1\n")
    proc = explain(db, "SELECT count(*) FROM generate_series(1, 3000000)", "-c", str(cfg))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_a_mistyped_dsn_is_never_echoed(db: SandboxDb) -> None:
    for command in (
        ["explain", "postgresql:/u:secret9@h/x", "SELECT 1"],
        ["indexes", "advise", "postgresql:/u:secret9@h/x"],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "opscope", *command], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 2 and "secret9" not in proc.stderr, proc.stderr


@pytest.mark.pg(16)
def test_the_generic_plan_text_is_refused_when_the_server_reads_two_statements(
    db: SandboxDb,
) -> None:
    # EXPLAIN (GENERIC_PLAN) goes over the simple protocol, which would run a second
    # statement: the server first parses the same bytes as one prepared statement. Here the
    # session lexes 'a\' unlike our parser, as any session could if we had not set it.
    db.execute("CREATE TABLE victim (id int)", "INSERT INTO victim VALUES (1), (2)")
    smuggled = "'; DELETE FROM victim; -- "
    with db.connect() as conn:
        conn.execute("SET standard_conforming_strings = off")
        with pytest.raises(psycopg.errors.SyntaxError, match="multiple commands"):
            _explain_generic(conn, "SELECT $1, 'a\\', $$" + smuggled + "$$", [sql.SQL("COSTS")])
        plan = _explain_generic(conn, "SELECT $1::int", [sql.SQL("FORMAT JSON")])
    assert plan[0]["Plan"]["Node Type"] == "Result"
    with db.connect() as conn:
        row = conn.execute("SELECT count(*) FROM victim").fetchone()
    assert row is not None and row[0] == 2

"""Plans on a real cluster: each test builds the situation, then asserts the diagnosis."""

from __future__ import annotations

import json
from collections.abc import Callable

import psycopg
import pytest
import typer
from typer.testing import CliRunner

from conftest import SandboxDb, Session, found
from opscope.db.catalog import Catalog
from opscope.db.connection import SqlRunner, connect
from opscope.db.plans.command import explain_command
from opscope.db.plans.diagnose import diagnose
from opscope.db.plans.explain import ExplainFailed, explain
from opscope.db.plans.review import read_setting
from opscope.db.settings import SessionSettings


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("explain")(explain_command)
    # a second command keeps typer from collapsing the app into the single command
    app.command("noop")(lambda: None)
    return app


def run_explain(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(_cli(), ["explain", *args])
    return result.exit_code, result.output


def test_disk_sort_forced_by_small_work_mem(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE notes (id int, body text)",
        "INSERT INTO notes SELECT g, md5(g::text) FROM generate_series(1, 60000) g",
        "ANALYZE notes",
        f"ALTER DATABASE {db.name} SET work_mem = '64kB'",
    )
    with db.connect() as conn:
        for _ in range(3):
            conn.execute("SELECT id, body FROM notes ORDER BY body").fetchall()
    report = db.analyze()
    sorts = found(report, "plan_disk_sort")
    assert len(sorts) == 1, report.errors
    f = sorts[0]
    assert f.object == "public.notes"
    assert f.evidence["query"] == "SELECT id, body FROM notes ORDER BY body"
    assert f.evidence["analyzed"] is True
    assert f.evidence["sort_method"] == "external merge"
    assert f.evidence["work_mem_kb"] == 64
    assert f.fix_sql is not None and f.fix_sql.startswith("SET work_mem = '")
    assert f.evidence["spilled_kb"] > 64


def test_misestimate_after_bulk_insert_without_analyze(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE tickets (id int, status text) WITH (autovacuum_enabled = off)",
        "INSERT INTO tickets SELECT g, 'closed' FROM generate_series(1, 2000) g",
        "ANALYZE tickets",
        "INSERT INTO tickets SELECT g, 'open' FROM generate_series(2001, 80000) g",
    )
    code, out = run_explain(
        db.dsn, "SELECT count(*) FROM tickets WHERE status = 'open'", "--format", "json"
    )
    assert code == 0, out
    data = json.loads(out)
    mis = [f for f in data["findings"] if f["check"] == "plan_row_misestimate"]
    assert [(f["object"], f["columns"]) for f in mis] == [("public.tickets", ["status"])]
    assert mis[0]["fix_sql"] == "ANALYZE public.tickets;"
    assert mis[0]["evidence"]["actual_rows"] >= 10 * mis[0]["evidence"]["plan_rows"]
    plan = next(iter(data["summary"].values()))["plan"]
    assert plan["analyzed"] is True and "Seq Scan on public.tickets" in plan["tree"]
    # once analyzed, the estimate is right and the finding goes away
    db.execute("ANALYZE tickets")
    code, out = run_explain(
        db.dsn, "SELECT count(*) FROM tickets WHERE status = 'open'", "--format", "json"
    )
    assert not [f for f in json.loads(out)["findings"] if f["check"] == "plan_row_misestimate"]


def test_seq_scan_of_large_table_for_few_rows(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE orders (id int, customer_id int, total numeric)",
        "INSERT INTO orders SELECT g, g % 5000, g FROM generate_series(1, 50000) g",
        "ANALYZE orders",
    )
    with db.connect() as conn:
        for c in range(20):
            conn.execute("SELECT * FROM orders WHERE customer_id = %s", [c]).fetchall()
    scans = found(db.analyze(), "plan_seq_scan")
    assert [(f.object, f.columns) for f in scans] == [("public.orders", ("customer_id",))]
    ev = scans[0].evidence
    # normalized text with $1: a generic plan, estimated, never run
    assert ev["query"] == "SELECT * FROM orders WHERE customer_id = $1"
    assert ev["generic_plan"] is True and ev["analyzed"] is False
    assert ev["discard_ratio"] >= 0.99
    assert ev["calls"] == 20


def test_terminal_tree_and_generic_plan_with_parameters(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE items (id int PRIMARY KEY, kind int)",
        "INSERT INTO items SELECT g, g % 7 FROM generate_series(1, 1000) g",
        "ANALYZE items",
    )
    code, out = run_explain(db.dsn, "SELECT * FROM items WHERE id = $1 AND kind = $2")
    assert code == 0, out
    assert "Index Scan using items_pkey on public.items" in out
    assert "Generic plan: parameter values unknown, no ANALYZE" in out
    assert "No problems found in this plan." in out
    # with values, the plan is custom and the statement is run
    code, out = run_explain(db.dsn, "SELECT * FROM items WHERE id = $1", "-p", "5")
    assert code == 0 and "actual" in out and "Execution:" in out


def test_writes_are_never_run(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE acct (id int, balance int)",
        "INSERT INTO acct SELECT g, 100 FROM generate_series(1, 100) g",
        "CREATE FUNCTION bump() RETURNS int VOLATILE LANGUAGE sql AS "
        "'UPDATE acct SET balance = balance + 1 RETURNING 1'",
    )
    session = SessionSettings()
    with connect(db.dsn, session) as conn:
        for stmt, reason in [
            ("DELETE FROM acct", "DELETE writes rows"),
            ("WITH d AS (DELETE FROM acct RETURNING *) SELECT * FROM d", "data-modifying WITH"),
            ("SELECT * FROM acct FOR UPDATE", "locks rows"),
            ("SELECT bump()", "it calls public.bump(), which is not known to be read-only"),
        ]:
            result = explain(conn, stmt, analyze=True)
            assert not result.plan.analyzed
            assert reason in result.note
        with pytest.raises(ExplainFailed, match="expected one statement, got 2"):
            explain(conn, "SELECT 1; DELETE FROM acct", analyze=True)
        with pytest.raises(ExplainFailed, match="only SELECT"):
            explain(conn, "DROP TABLE acct")
        # a read-only statement is run, in a transaction that is rolled back
        assert explain(conn, "SELECT count(*) FROM acct", analyze=True).plan.analyzed
    with db.connect() as check:
        row = check.execute("SELECT count(*), sum(balance) FROM acct").fetchone()
    assert row == (100, 10000)
    code, out = run_explain(db.dsn, "DELETE FROM acct", "--analyze")
    assert code == 0 and "not run (no ANALYZE): DELETE writes rows" in out


def test_nested_loop_repeating_a_full_scan(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE parents (id int, name text)",
        "CREATE TABLE kids (id int, parent_id int)",
        "INSERT INTO parents SELECT g, 'p' FROM generate_series(1, 2000) g",
        "INSERT INTO kids SELECT g, g % 2000 FROM generate_series(1, 3000) g",
        "ANALYZE parents, kids",
    )
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        conn.execute("SET enable_hashjoin = off")
        conn.execute("SET enable_mergejoin = off")
        conn.execute("SET enable_material = off")
        result = explain(
            conn, "SELECT p.name, k.id FROM parents p JOIN kids k ON k.parent_id = p.id"
        )
        tables = {t.qualified: t for t in Catalog(SqlRunner(conn)).tables}
        issues = diagnose(result.plan, tables=tables, setting=read_setting(conn))
    loops = [i for i in issues if i.check == "plan_nested_loop"]
    assert [(i.relation, i.columns) for i in loops] == [("public.parents", ("id",))]
    assert loops[0].node.node_type == "Nested Loop"
    assert loops[0].evidence["inner_loops"] >= 1000


def test_limit_is_not_a_misestimate_and_a_correlated_scan_names_its_own_column(
    db: SandboxDb,
) -> None:
    db.execute(
        "CREATE TABLE customers (id int PRIMARY KEY, country text)",
        "INSERT INTO customers SELECT g, 'c' || g % 4 FROM generate_series(1, 20000) g",
        "CREATE TABLE orders (id int PRIMARY KEY, customer_id int)",
        "INSERT INTO orders SELECT g, g % 20000 FROM generate_series(1, 60000) g",
        "ANALYZE",
    )
    code, out = run_explain(
        db.dsn,
        "SELECT c.id, (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) "
        "FROM customers c WHERE c.country = 'c1' ORDER BY c.id LIMIT 20",
        "--format",
        "json",
    )
    assert code == 0, out
    findings = json.loads(out)["findings"]
    # the index scan below the Limit stops after 20 rows of an estimated 5,000: not a finding
    assert not [f for f in findings if f["check"] == "plan_row_misestimate"]
    scans = [f for f in findings if f["check"] == "plan_seq_scan"]
    assert [(f["object"], f["columns"]) for f in scans] == [("public.orders", ["customer_id"])]


def test_a_statement_behind_a_lock_is_an_error_not_a_silent_gap(
    db: SandboxDb, lock_holder: Callable[..., Session]
) -> None:
    db.execute(
        "CREATE TABLE busy (id int, v int)",
        "INSERT INTO busy SELECT g, g % 50 FROM generate_series(1, 50000) g",
        "CREATE TABLE calm (id int, v int)",
        "INSERT INTO calm SELECT g, g % 50 FROM generate_series(1, 50000) g",
        "ANALYZE busy, calm",
    )
    with db.connect() as conn:
        for v in range(5):
            conn.execute("SELECT * FROM busy WHERE id = %s", [v]).fetchall()
            conn.execute("SELECT * FROM calm WHERE id = %s", [v]).fetchall()
    holder = lock_holder("busy")
    report = db.analyze()
    holder.release()
    # the statements on busy (the SELECT, and the INSERT that filled it)
    skipped = [e for e in report.errors if e.check == "plan_seq_scan"]
    assert skipped, report.errors
    for error in skipped:
        assert "could not explain a top statement (queryid" in error.message
        assert "lock timeout" in error.message
    # the statement that could be explained is still reviewed
    assert [f.object for f in found(report, "plan_seq_scan")] == ["public.calm"]

"""Plan findings that a reviewer showed wrong, on real plans: nodes stopped early by a Merge
Join or a Limit, nested loops that probe an index or re-read a materialized side."""

from __future__ import annotations

from typing import Any

from conftest import SandboxDb
from opscope.db.catalog import Catalog
from opscope.db.connection import SqlRunner, connect
from opscope.db.plans.diagnose import PlanIssue, diagnose
from opscope.db.plans.explain import explain
from opscope.db.settings import SessionSettings


def issues(db: SandboxDb, query: str, *settings: str) -> list[PlanIssue]:
    with connect(db.dsn, SessionSettings()) as conn:
        for setting in settings:
            conn.execute(setting.encode())
        result = explain(conn, query, analyze=True)
        assert result.plan.analyzed, result.note
        tables: dict[str, Any] = {t.qualified: t for t in Catalog(SqlRunner(conn)).tables}
        return diagnose(result.plan, tables=tables)


def checks(found: list[PlanIssue]) -> set[str]:
    return {i.check for i in found}


def test_merge_join_stopping_early_is_not_a_misestimate(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE m1 (id int PRIMARY KEY)",
        "INSERT INTO m1 SELECT generate_series(1, 100000)",
        "CREATE TABLE m2 (id int PRIMARY KEY)",
        "INSERT INTO m2 SELECT generate_series(1, 50)",
        "VACUUM ANALYZE m1",
        "VACUUM ANALYZE m2",
    )
    found = issues(
        db,
        "SELECT * FROM m1 JOIN m2 USING (id)",
        "SET enable_hashjoin = off",
        "SET enable_nestloop = off",
    )
    assert "plan_row_misestimate" not in checks(found), [i.title for i in found]


def test_limit_does_not_hide_a_misestimate_below_a_sort(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE big (id int, g int, v int, pad text) WITH (autovacuum_enabled = off)",
        # g and v are equal: no row has g > 50 and v < 50, but the planner multiplies the
        # two selectivities and expects a quarter of the table; the Sort reads all of it
        "INSERT INTO big SELECT i, i % 100, i % 100, 'p' FROM generate_series(1, 100000) i",
        "ANALYZE big",
    )
    found = issues(db, "SELECT * FROM big WHERE g > 50 AND v < 50 ORDER BY pad LIMIT 10")
    mis = [i for i in found if i.check == "plan_row_misestimate"]
    assert mis and mis[0].relation == "public.big"


def test_index_probe_nested_loop_is_fine(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE small (id int)",
        "INSERT INTO small SELECT generate_series(1, 3000)",
        "CREATE TABLE bigt (id int PRIMARY KEY, v text)",
        "INSERT INTO bigt SELECT g, 'v' FROM generate_series(1, 100000) g",
        "ANALYZE small",
        "ANALYZE bigt",
    )
    found = issues(
        db,
        "SELECT b.v FROM small s JOIN bigt b ON b.id = s.id",
        "SET enable_hashjoin = off",
        "SET enable_mergejoin = off",
    )
    assert "plan_nested_loop" not in checks(found), [i.title for i in found]


def test_materialized_inner_side_is_not_rescanned(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE small (id int, g int)",
        "INSERT INTO small SELECT g, g FROM generate_series(1, 3000) g",
        "CREATE TABLE lookup (code int)",
        "INSERT INTO lookup SELECT generate_series(1, 20)",
        "ANALYZE small",
        "ANALYZE lookup",
    )
    found = issues(db, "SELECT count(*) FROM small s JOIN lookup l ON s.g < l.code")
    assert "plan_nested_loop" not in checks(found), [i.title for i in found]


def test_analyze_that_times_out_falls_back_to_the_plan(db: SandboxDb) -> None:
    with connect(db.dsn, SessionSettings(statement_timeout_ms=300)) as conn:
        result = explain(conn, "SELECT count(*) FROM generate_series(1, 300000000)")
    assert not result.plan.analyzed
    assert "statement_timeout" in result.note

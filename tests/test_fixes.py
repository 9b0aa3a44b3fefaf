"""Fix grouping, with plain inputs: which findings are one change, and which fix they join."""

from __future__ import annotations

from typing import Any

from opscope.db.fixes import sql_changes
from opscope.findings import Finding, Severity
from opscope.fixes import group_fixes


def _f(check: str, sql: str, target: str = "db", **evidence: Any) -> Finding:
    return Finding.make(
        check=check,
        category="c",
        severity=Severity.warning,
        target=target,
        object="o",
        title="t",
        key=(sql,),
        fix_sql=sql,
        evidence=evidence,
    )


def _groups(*findings: Finding) -> list[list[str]]:
    """The checks of each fix, in no particular order (ranking has its own test)."""
    return sorted(sorted(fix.checks) for fix in group_fixes(findings, sql_changes))


def test_an_index_serves_the_requests_for_its_leading_columns() -> None:
    fixes = group_fixes(
        [
            _f("fk", "CREATE INDEX CONCURRENTLY a_idx ON s.t (a);"),
            _f("wide", "CREATE INDEX CONCURRENTLY a_b_idx ON s.t (a, b);", time_saved_ms=10.0),
            _f("named_else", "CREATE INDEX another_name ON s.t (a);"),
            _f("other_order", "CREATE INDEX CONCURRENTLY b_a_idx ON s.t (b, a);"),
        ],
        sql_changes,
    )
    by_title = {fix.title: sorted(fix.checks) for fix in fixes}
    assert by_title == {
        "Create an index on s.t (a, b)": ["fk", "named_else", "wide"],
        "Create an index on s.t (b, a)": ["other_order"],
    }
    assert fixes[0].benefit == {"time_saved_ms": 10.0}


def test_what_an_index_cannot_serve_stays_apart() -> None:
    assert _groups(
        _f("partial", "CREATE INDEX x ON s.t (a, b) WHERE b > 0;"),
        _f("plain", "CREATE INDEX y ON s.t (a);"),
        _f("unique", "CREATE UNIQUE INDEX z ON s.t (a);"),
        _f("gin", "CREATE INDEX w ON s.t USING gin (a);"),
        _f("desc", "CREATE INDEX v ON s.t (a DESC);"),
        _f("other_table", "CREATE INDEX u ON s.u (a);"),
    ) == [["desc"], ["gin"], ["other_table"], ["partial"], ["plain"], ["unique"]]


def test_include_columns_are_served_by_a_key_or_an_include() -> None:
    assert _groups(
        _f("covering", "CREATE INDEX x ON s.t (a) INCLUDE (b);"),
        _f("keyed", "CREATE INDEX y ON s.t (a, b);"),
        _f("plain", "CREATE INDEX z ON s.t (a);"),
    ) == [["covering", "keyed", "plain"]]


def test_vacuum_analyze_does_what_analyze_does_and_drops_are_one_fix() -> None:
    assert _groups(
        _f("stale", "ANALYZE s.t;"),
        _f("bloat", "VACUUM (ANALYZE) s.t;"),
        _f("unused", "DROP INDEX CONCURRENTLY s.i;", bytes_freed=10),
        _f("redundant", "DROP INDEX CONCURRENTLY s.i;", bytes_freed=10),
        _f("stale_elsewhere", "ANALYZE s.u;"),
    ) == [["bloat", "stale"], ["redundant", "unused"], ["stale_elsewhere"]]


def test_targets_never_share_a_fix() -> None:
    assert _groups(
        _f("a", "DROP INDEX s.i;", target="one"), _f("a", "DROP INDEX s.i;", target="two")
    ) == [["a"], ["a"]]


def test_sql_that_does_not_parse_is_told_apart_by_its_text() -> None:
    fixes = group_fixes(
        [_f("x", "SET  work_mem = '64MB';"), _f("y", "SET work_mem = '64MB';"), _f("z", "not sql")],
        sql_changes,
    )
    assert sorted(sorted(f.checks) for f in fixes) == [["x", "y"], ["z"]]
    rebuild = group_fixes([_f("bloat", "REINDEX INDEX CONCURRENTLY s.i;")], sql_changes)
    assert rebuild[0].title == "Rebuild index s.i"


def test_fixes_rank_by_severity_then_benefit() -> None:
    critical = Finding.make(
        check="c", category="c", severity=Severity.critical, target="db", object="o",
        title="t", fix_sql="VACUUM s.t;",
    )  # fmt: skip
    fixes = group_fixes(
        [
            _f("small", "DROP INDEX s.small;", bytes_freed=10),
            _f("big", "DROP INDEX s.big;", bytes_freed=1000),
            critical,
        ],
        sql_changes,
    )
    assert [f.checks for f in fixes] == [("c",), ("big",), ("small",)]


def test_a_fix_belongs_to_the_target_it_changes() -> None:
    sql = "CREATE INDEX CONCURRENTLY o_idx ON s.orders (customer_id);"
    on_db = _f("missing_index", sql, target="shop")
    from_api = _f("slow_endpoint", sql, target="shop-api", fix_target="shop")
    elsewhere = _f("slow_endpoint", sql, target="other-api")
    fixes = group_fixes([on_db, from_api, elsewhere], sql_changes)
    assert sorted((f.target, sorted(f.checks)) for f in fixes) == [
        ("other-api", ["slow_endpoint"]),
        ("shop", ["missing_index", "slow_endpoint"]),
    ]

"""The advisor finds predicates where PostgreSQL itself sees them: through views (nested),
CTEs it inlines (never a MATERIALIZED one), ORDER BY 1 and output aliases, the partitions of
a partitioned table (costed there, recommended on the parent), and relations never analyzed.
Views and CTEs run with hypopg (costed) and without it (the unverified ranking, which may
widen the index); the others need hypopg: without statistics or a sort to rank by, the
unverified ranking proposes nothing for them."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import SandboxDb, found
from opscope.findings import Finding

ORDERS = (
    "CREATE TABLE orders (id int PRIMARY KEY, customer_id int, created_at timestamptz, "
    "total numeric, note text)",
    "INSERT INTO orders SELECT g, g % 5000, now() - g * interval '1 minute', g, 'n' "
    "FROM generate_series(1, 80000) g",
)


def load(db: SandboxDb, *statements: str) -> None:
    db.execute(
        *statements, "ANALYZE", "SELECT pg_stat_reset()", "SELECT pg_stat_statements_reset()"
    )


def run(db: SandboxDb, query: str, values: list[list[Any]]) -> None:
    with db.connect() as conn:
        for params in values:
            conn.execute(query.encode(), params).fetchall()


def indexes(db: SandboxDb) -> list[Finding]:
    report = db.analyze()
    assert not [e for e in report.errors if e.check == "missing_index"], report.errors
    return found(report, "missing_index")


def keys(db: SandboxDb) -> set[tuple[str, tuple[str, ...]]]:
    """(table, leading key) of each recommended index."""
    return {(f.object, tuple(f.columns[:1])) for f in indexes(db)}


def test_a_filter_through_nested_views(db: SandboxDb) -> None:
    load(
        db,
        *ORDERS,
        "CREATE VIEW recent_orders AS SELECT * FROM orders WHERE total > 0",
        "CREATE VIEW big_orders AS SELECT id, customer_id, total FROM recent_orders",
    )
    run(db, "SELECT * FROM big_orders WHERE customer_id = %s", [[c] for c in range(40)])
    assert ("public.orders", ("customer_id",)) in keys(db)


def test_an_inlined_cte_but_never_a_materialized_one(db: SandboxDb) -> None:
    load(db, *ORDERS)
    for query in (
        "WITH o AS (SELECT * FROM orders) SELECT * FROM o WHERE customer_id = %s",
        "WITH o AS NOT MATERIALIZED (SELECT * FROM orders) SELECT * FROM o WHERE customer_id = %s",
    ):
        db.execute("SELECT pg_stat_statements_reset()")
        run(db, query, [[c] for c in range(40)])
        assert ("public.orders", ("customer_id",)) in keys(db), query
    # materialized, the CTE is computed in full and the filter applies to its result: an
    # index on orders.customer_id cannot serve it
    db.execute("SELECT pg_stat_statements_reset()")
    run(
        db,
        "WITH o AS MATERIALIZED (SELECT * FROM orders) SELECT * FROM o WHERE customer_id = %s",
        [[c] for c in range(40)],
    )
    assert ("public.orders", ("customer_id",)) not in keys(db)


@pytest.mark.needs("hypopg")
def test_order_by_an_ordinal_or_an_output_alias(db: SandboxDb) -> None:
    load(db, *ORDERS)
    run(db, "SELECT created_at, total FROM orders ORDER BY 1 DESC LIMIT %s", [[10]] * 40)
    assert ("public.orders", ("created_at",)) in keys(db)
    db.execute("SELECT pg_stat_statements_reset()")
    run(db, "SELECT created_at AS at, total FROM orders ORDER BY at LIMIT %s", [[10]] * 40)
    assert ("public.orders", ("created_at",)) in keys(db)
    # through a view, where only the plan shows the column
    db.execute(
        "CREATE VIEW stamped AS SELECT created_at AS at, total FROM orders",
        "SELECT pg_stat_statements_reset()",
    )
    run(db, "SELECT * FROM stamped ORDER BY 1 DESC LIMIT %s", [[10]] * 40)
    assert ("public.orders", ("created_at",)) in keys(db)


@pytest.mark.needs("hypopg")
def test_a_partitioned_table_is_costed_on_its_partitions_and_indexed_on_the_parent(
    db: SandboxDb,
) -> None:
    load(
        db,
        "CREATE TABLE events (id bigint, account_id int, at date NOT NULL, v text) "
        "PARTITION BY RANGE (at)",
        "CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO "
        "('2026-01-01')",
        "CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO "
        "('2027-01-01')",
        "INSERT INTO events SELECT g, g % 4000, date '2025-01-01' + (g % 700), 'v' "
        "FROM generate_series(1, 80000) g",
    )
    run(db, "SELECT * FROM events WHERE account_id = %s", [[a] for a in range(40)])
    [f] = [f for f in indexes(db) if f.object == "public.events"]
    assert tuple(f.columns) == ("account_id",)
    assert f.fix_sql is not None
    lines = f.fix_sql.splitlines()
    assert lines[0].startswith("CREATE INDEX events_account_id_idx ON ONLY public.events")
    assert sum("CREATE INDEX CONCURRENTLY" in line for line in lines) == 2
    assert sum("ATTACH PARTITION" in line for line in lines) == 2
    # the recipe runs, statement by statement, and leaves one valid index on the parent
    db.execute(*lines)
    with db.connect() as conn:
        row = conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'events_account_id_idx'::regclass"
        ).fetchone()
    assert row == (True,)


@pytest.mark.needs("hypopg")
def test_a_materialized_view_never_analyzed_is_not_taken_for_empty(db: SandboxDb) -> None:
    db.execute(
        "CREATE MATERIALIZED VIEW totals AS SELECT g AS id, g % 3000 AS customer_id, "
        "g AS total FROM generate_series(1, 80000) g",
        "SELECT pg_stat_reset()",
        "SELECT pg_stat_statements_reset()",
    )
    with db.connect() as conn:
        row = conn.execute(
            "SELECT c.reltuples, s.n_live_tup FROM pg_class c JOIN pg_stat_all_tables s "
            "ON s.relid = c.oid WHERE c.relname = 'totals'"
        ).fetchone()
    assert row is not None and row[0] <= 0 and row[1] == 0  # what used to read as empty
    run(db, "SELECT * FROM totals WHERE customer_id = %s", [[c] for c in range(40)])
    assert ("public.totals", ("customer_id",)) in keys(db)

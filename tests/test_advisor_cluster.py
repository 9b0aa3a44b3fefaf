"""The index advisor on a real cluster: workloads that need an index, and traps that don't."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from conftest import SandboxDb, found
from opscope.db.analyze import analyze_database
from opscope.db.settings import AdvisorSettings, PostgresSettings, postgres_config

# costed by hypopg, which this machine has for Debian's PostgreSQL only (README)
pytestmark = pytest.mark.needs("hypopg")


def load(db: SandboxDb, *statements: str) -> None:
    """Build tables, analyze them, then zero the table counters: the bulk load is not the
    workload, and its inserts would otherwise count as write overhead."""
    db.execute(*statements, "ANALYZE", "SELECT pg_stat_reset()")


def all_visible(db: SandboxDb, table: str) -> None:
    """Index-only scans need the visibility map set. VACUUM cannot set it while another
    snapshot (an autoanalyze woken by the load) still sees the insert as recent: retry."""
    with db.connect() as conn:
        for _ in range(50):
            conn.execute(sql.SQL("VACUUM {}").format(sql.Identifier(table)))
            row = conn.execute(
                "SELECT relallvisible >= relpages FROM pg_class WHERE relname = %s", [table]
            ).fetchone()
            if row and row[0]:
                return
            time.sleep(0.2)
    raise AssertionError(f"VACUUM could not set the visibility map of {table}")


def run(db: SandboxDb, query: str, values: list[list[Any]]) -> None:
    with db.connect() as conn:
        for params in values:
            conn.execute(query, params).fetchall()


def advice(db: SandboxDb) -> list[tuple[str, str, tuple[str, ...]]]:
    report = db.analyze()
    assert not [e for e in report.errors if e.check in {"missing_index", "composite_index_order"}]
    return sorted(
        (f.check, f.object, f.columns)
        for f in report.findings
        if f.check in {"missing_index", "composite_index_order"}
    )


def test_plain_index_with_evidence(db: SandboxDb) -> None:
    load(
        db,
        "CREATE TABLE orders (id int PRIMARY KEY, customer_id int, total numeric, note text)",
        "INSERT INTO orders SELECT g, g % 5000, g, 'n' FROM generate_series(1, 60000) g",
    )
    run(db, "SELECT * FROM orders WHERE customer_id = %s", [[c] for c in range(40)])
    report = db.analyze()
    [f] = found(report, "missing_index")
    assert (f.object, f.columns) == ("public.orders", ("customer_id",))
    assert f.fix_sql == (
        "CREATE INDEX CONCURRENTLY orders_customer_id_idx ON public.orders (customer_id);"
    )
    [stmt] = f.evidence["statements"]
    assert stmt["query"] == "SELECT * FROM orders WHERE customer_id = $1"
    assert stmt["calls"] == 40 and isinstance(stmt["queryid"], int)
    assert stmt["cost_after"] < stmt["cost_before"] / 10
    assert f.evidence["size_bytes"] > 0 and f.evidence["verified"] is True
    assert f.evidence["include"] == []


def test_composite_in_the_right_order_replaces_the_wrong_one(db: SandboxDb) -> None:
    load(
        db,
        "CREATE TABLE events (id int PRIMARY KEY, account_id int, created_at timestamptz,"
        " kind text)",
        "INSERT INTO events SELECT g, g % 2000, timestamptz '2026-01-01' + g * interval '1 min',"
        " 'k' FROM generate_series(1, 80000) g",
        "CREATE INDEX events_created_account ON events (created_at, account_id)",
    )
    run(
        db,
        "SELECT * FROM events WHERE account_id = %s AND created_at > %s",
        [[a, "2026-01-20"] for a in range(40)],
    )
    assert advice(db) == [
        ("composite_index_order", "public.events_created_account", ("account_id", "created_at"))
    ]
    f = found(db.analyze(), "composite_index_order")[0]
    assert f.fix_sql == (
        "CREATE INDEX CONCURRENTLY events_account_id_created_at_idx ON public.events "
        "(account_id, created_at); DROP INDEX CONCURRENTLY public.events_created_account;"
    )
    assert f.evidence["replaces_definition"].endswith("(created_at, account_id)")


def test_expression_index(db: SandboxDb) -> None:
    load(
        db,
        "CREATE TABLE users (id int PRIMARY KEY, email text, name text)",
        "INSERT INTO users SELECT g, 'User' || g || '@Example.com', 'n' "
        "FROM generate_series(1, 50000) g",
    )
    run(
        db,
        "SELECT id, name FROM users WHERE lower(email) = %s",
        [[f"user{i}@example.com"] for i in range(30)],
    )
    [f] = found(db.analyze(), "missing_index")
    assert (f.object, f.columns) == ("public.users", ("lower(email)",))
    assert f.fix_sql == (
        "CREATE INDEX CONCURRENTLY users_lower_email_idx ON public.users ((lower(email)));"
    )


def test_covering_index_for_an_index_only_scan(db: SandboxDb) -> None:
    load(
        db,
        "CREATE TABLE payments (id int PRIMARY KEY, account_id int, amount numeric, memo text)",
        "INSERT INTO payments SELECT g, g % 300, g % 97, repeat('m', 60)"
        " FROM generate_series(1, 90000) g",
    )
    all_visible(db, "payments")
    run(db, "SELECT sum(amount) FROM payments WHERE account_id = %s", [[a] for a in range(40)])
    [f] = found(db.analyze(), "missing_index")
    assert (f.object, f.columns) == ("public.payments", ("account_id",))
    assert f.evidence["include"] == ["amount"]
    assert f.fix_sql == (
        "CREATE INDEX CONCURRENTLY payments_account_id_incl_idx ON public.payments "
        "(account_id) INCLUDE (amount);"
    )


def test_traps_get_no_index(db: SandboxDb) -> None:
    load(
        db,
        # a tiny table: reading its one page beats any index
        "CREATE TABLE colors (id int, name text)",
        "INSERT INTO colors SELECT g, 'c' || g FROM generate_series(1, 40) g",
        # five uniform values: each matches 20% of the rows
        "CREATE TABLE tasks (id int PRIMARY KEY, status int, note text)",
        "INSERT INTO tasks SELECT g, g % 5, 'n' FROM generate_series(1, 60000) g",
        # a column that already has a good index
        "CREATE TABLE accounts (id int, email text, region int)",
        "INSERT INTO accounts SELECT g, 'a' || g, g % 50 FROM generate_series(1, 60000) g",
        "CREATE INDEX accounts_email ON accounts (email)",
    )
    run(db, "SELECT * FROM colors WHERE name = %s", [[f"c{i}"] for i in range(30)])
    run(db, "SELECT id, note FROM tasks WHERE status = %s", [[i % 5] for i in range(30)])
    run(db, "SELECT status, count(*) FROM tasks GROUP BY status", [[]] * 10)
    run(db, "SELECT sum(region) FROM accounts", [[]] * 10)
    run(db, "SELECT * FROM accounts WHERE email = %s", [[f"a{i}"] for i in range(30)])
    assert advice(db) == []


def test_correlated_subquery_in_the_select_list_and_a_typed_literal(db: SandboxDb) -> None:
    load(
        db,
        "CREATE TABLE customers (id int PRIMARY KEY, country text)",
        "INSERT INTO customers SELECT g, 'c' || g % 7 FROM generate_series(1, 5000) g",
        "CREATE TABLE orders (id int PRIMARY KEY, customer_id int, status text,"
        " created_at timestamptz, total numeric)",
        "INSERT INTO orders SELECT g, g % 5000, 's' || g % 4,"
        " timestamptz '2026-01-01' + g * interval '1 min', g FROM generate_series(1, 100000) g",
    )
    with db.connect() as conn:
        for country in range(3):
            # the subquery runs once per customer row: orders.customer_id needs an index
            conn.execute(
                "SELECT c.id, (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) "
                "FROM customers c WHERE c.country = %s ORDER BY c.id LIMIT 50",
                [f"c{country}"],
            ).fetchall()
        for _ in range(20):
            # pg_stat_statements stores this as "... > $1 - interval $2", which only plans
            # once rewritten as a cast
            conn.execute(
                "SELECT sum(total) FROM orders WHERE created_at > "
                "timestamptz '2026-03-01' - interval '1 day'"
            ).fetchall()
    assert advice(db) == [
        ("missing_index", "public.orders", ("created_at",)),
        ("missing_index", "public.orders", ("customer_id",)),
    ]


def test_a_unique_index_in_the_wrong_order_is_never_dropped(db: SandboxDb) -> None:
    load(
        db,
        "CREATE TABLE pairs (id bigserial, a int NOT NULL, b int NOT NULL, payload text)",
        "INSERT INTO pairs (a, b, payload) SELECT i % 1000, i / 1000, 'p'"
        " FROM generate_series(0, 199999) i",
        "CREATE UNIQUE INDEX pairs_b_a_uq ON pairs (b, a)",
    )
    run(
        db,
        "SELECT payload FROM pairs WHERE a = %s AND b > %s",
        [[i, 100] for i in range(60)],
    )
    [f] = [f for f in db.analyze().findings if f.object == "public.pairs_b_a_uq"]
    assert f.check == "composite_index_order" and f.columns == ("a", "b")
    assert "DROP INDEX" not in (f.fix_sql or "")
    assert "uniqueness" in f.detail and "keep it" in f.detail
    assert f.evidence["replaces_protected"] is True
    assert isinstance(f.evidence["replaces_idx_scan"], int)


def test_an_old_index_other_statements_scan_is_kept(db: SandboxDb) -> None:
    load(
        db,
        "CREATE TABLE events (id int PRIMARY KEY, account_id int, created_at timestamptz,"
        " kind text)",
        "INSERT INTO events SELECT g, g % 2000, timestamptz '2026-01-01' + g * interval '1 min',"
        " 'k' FROM generate_series(1, 80000) g",
        "CREATE INDEX events_created_account ON events (created_at, account_id)",
    )
    # scans of the old index by statements the advisor does not study (pg_stat_statements
    # is reset afterwards, the table statistics are not)
    run(
        db,
        "SELECT id FROM events WHERE created_at = %s",
        [["2026-01-20"]] * 300,
    )
    with db.connect() as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
    run(
        db,
        "SELECT * FROM events WHERE account_id = %s AND created_at > %s",
        [[a, "2026-01-20"] for a in range(40)],
    )
    [f] = found(db.analyze(), "composite_index_order")
    assert "DROP INDEX" not in (f.fix_sql or "")
    assert "other statements may use it" in f.detail
    assert f.evidence["replaces_idx_scan"] >= 300


@pytest.mark.needs()  # the fallback's own test: runs wherever hypopg is not
def test_quoted_column_names_find_their_existing_index(db: SandboxDb) -> None:
    # without hypopg nothing is costed: only the comparison with existing indexes keeps the
    # fallback from proposing an index that is already there
    load(
        db,
        "DROP EXTENSION IF EXISTS hypopg",
        'CREATE TABLE "Acct" (id int PRIMARY KEY, "UserId" int, "Region" int, note text)',
        "INSERT INTO \"Acct\" SELECT g, g % 5000, g % 7, 'n' FROM generate_series(1, 60000) g",
        'CREATE INDEX acct_user ON "Acct" ("UserId") INCLUDE ("Region")',
    )
    run(db, 'SELECT * FROM "Acct" WHERE "UserId" = %s', [[u] for u in range(40)])
    run(db, 'SELECT "Region" FROM "Acct" WHERE "UserId" = %s', [[u] for u in range(40)])
    assert advice(db) == []


def test_the_fix_sql_never_reuses_a_name_the_schema_has(db: SandboxDb) -> None:
    load(
        db,
        "CREATE TABLE orders (id int PRIMARY KEY, customer_id int, total numeric, note text)",
        "INSERT INTO orders SELECT g, g % 5000, g, 'n' FROM generate_series(1, 60000) g",
        # the default name is taken by an index on another column
        "CREATE INDEX orders_customer_id_idx ON orders (total)",
    )
    run(db, "SELECT * FROM orders WHERE customer_id = %s", [[c] for c in range(40)])
    [f] = found(db.analyze(), "missing_index")
    assert f.fix_sql == (
        "CREATE INDEX CONCURRENTLY orders_customer_id_idx1 ON public.orders (customer_id);"
    )


def test_a_bulk_load_before_the_statements_reset_does_not_hide_an_index(db: SandboxDb) -> None:
    # the load's inserts stay in the table counters (no pg_stat_reset), but happened before
    # pg_stat_statements was reset: the workload's window saw none of them
    db.execute(
        "CREATE TABLE orders (id int PRIMARY KEY, customer_id int, total numeric, note text)",
        "INSERT INTO orders SELECT g, g % 5000, g, 'n' FROM generate_series(1, 200000) g",
        "ANALYZE orders",
    )
    time.sleep(1.0)
    with db.connect() as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
    run(db, "SELECT * FROM orders WHERE customer_id = %s", [[c] for c in range(10)])
    [f] = found(db.analyze(), "missing_index")
    assert f.columns == ("customer_id",)
    windows = f.evidence["write_windows"]
    assert windows["statements_s"] < windows["table_stats_s"]
    assert 0 < windows["scale"] < 1


def test_tables_on_the_applications_own_search_path(db: SandboxDb) -> None:
    load(
        db,
        "CREATE SCHEMA app",
        "CREATE TABLE app.items (id int PRIMARY KEY, sku text, pad text)",
        "INSERT INTO app.items SELECT g, 'sku' || g, 'p' FROM generate_series(1, 60000) g",
    )
    with db.connect() as conn:
        # the application's role runs with search_path = app; opscope's session does not
        conn.execute("SET search_path = app")
        for n in range(40):
            conn.execute("SELECT pad FROM items WHERE sku = %s", [f"sku{n}"]).fetchall()
    assert advice(db) == [("missing_index", "app.items", ("sku",))]


def test_a_63_byte_table_gets_a_free_index_name_shared_with_its_fk_finding(
    db: SandboxDb,
) -> None:
    table = "o" * 63
    fill = f"INSERT INTO {table} SELECT g, g % 5000, g, 'n' FROM generate_series(1, 60000) g"  # noqa: S608
    load(
        db,
        "CREATE TABLE customers (id int PRIMARY KEY)",
        "INSERT INTO customers SELECT generate_series(0, 4999)",
        f"CREATE TABLE {table} (id int PRIMARY KEY, customer_id int REFERENCES customers,"
        " total numeric, note text)",
        fill,
        # a sequence has the name the 63-byte cut gives
        f"CREATE SEQUENCE {'o' * 59}_idx",
    )
    query = f"SELECT * FROM {table} WHERE customer_id = %s"  # noqa: S608 - a constant name
    run(db, query, [[c] for c in range(40)])
    report = db.analyze()
    [f] = found(report, "missing_index")
    name = "o" * 58 + "_idx1"
    assert f.fix_sql == f"CREATE INDEX CONCURRENTLY {name} ON public.{table} (customer_id);"
    # the foreign key wants the same index: the same name, so one fix serves both
    [fk] = found(report, "fk_without_index")
    assert fk.fix_sql == f.fix_sql
    db.execute(f.fix_sql)
    with db.connect() as conn:
        row = conn.execute(
            "SELECT i.indisvalid, i.indrelid::regclass::text FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = %s",
            [name],
        ).fetchone()
    assert row == (True, table)


def test_a_bulk_load_just_after_the_reset_is_not_taken_for_a_steady_write_rate(
    db: SandboxDb, tmp_path: Path
) -> None:
    # the counters are reset, then 100,000 rows arrive: seconds-old counters make that tens
    # of thousands of inserts a second, which would decline any index on the table
    db.execute(
        "CREATE TABLE orders (id int PRIMARY KEY, customer_id int, total numeric, note text)",
        "SELECT pg_stat_reset()",
        "INSERT INTO orders SELECT g, g % 5000, g, 'n' FROM generate_series(1, 100000) g",
        "ANALYZE orders",
        "SELECT pg_stat_statements_reset()",
    )
    run(db, "SELECT * FROM orders WHERE customer_id = %s", [[c] for c in range(10)])
    [f] = found(db.analyze(), "missing_index")
    windows = f.evidence["write_windows"]
    assert windows["table_stats_s"] < 60 and windows["write_window_s"] == 3600
    assert "too young to tell a bulk load from steady writes" in f.detail
    # taken at face value (no minimum window), the same counters decline the index
    settings = PostgresSettings(advisor=AdvisorSettings(write_rate_min_window_s=0))
    report = analyze_database(postgres_config(settings, state_dir=tmp_path), db.dsn)
    assert found(report, "missing_index") == []

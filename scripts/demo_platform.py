"""Build a small data platform in a sandbox cluster, run a workload on it, analyze it.

Used by scripts/demo. Every problem opscope reports here is real: the workload creates it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from opscope.db.sandbox import Sandbox

SCHEMA = """
CREATE SCHEMA shop;
CREATE TABLE shop.customers (
    id int PRIMARY KEY, email text NOT NULL, phone text, country text, created_at timestamptz);
CREATE TABLE shop.products (id int PRIMARY KEY, sku text NOT NULL, name text, price numeric);
CREATE TABLE shop.orders (
    id bigint PRIMARY KEY, customer_id int NOT NULL REFERENCES shop.customers,
    status text NOT NULL, total numeric, created_at timestamptz NOT NULL);
CREATE TABLE shop.order_items (
    order_id bigint NOT NULL REFERENCES shop.orders, product_id int NOT NULL
    REFERENCES shop.products, qty int);
CREATE TABLE shop.events (
    id bigint, account_id int, kind text, payload jsonb, created_at timestamptz)
    WITH (autovacuum_enabled = false);
CREATE TABLE shop.sessions (id int PRIMARY KEY, customer_id int, state text, seen_at timestamptz)
    WITH (autovacuum_enabled = false);
"""

DATA = """
INSERT INTO shop.customers
SELECT g, 'user' || (g % 19000) || '@example.com', '+1-555-' || g,
       (ARRAY['DE','FR','US','JP'])[1 + g % 4], now() - g * interval '1 minute'
FROM generate_series(1, 20000) g;
INSERT INTO shop.products SELECT g, 'SKU-' || g, 'product ' || g, (g % 90) + 9.99
FROM generate_series(1, 2000) g;
INSERT INTO shop.orders
SELECT g, 1 + (g::bigint * 7919) % 20000,
       (ARRAY['paid','shipped','pending','cancelled'])[1 + g % 4], (g % 500) + 0.5,
       now() - (g % 50000) * interval '1 minute'
FROM generate_series(1, 300000) g;
INSERT INTO shop.order_items SELECT g, 1 + g % 2000, 1 + g % 3 FROM generate_series(1, 300000) g;
INSERT INTO shop.sessions SELECT g, g % 20000, 'new', now() FROM generate_series(1, 100000) g;
ANALYZE shop.customers, shop.products, shop.orders, shop.order_items, shop.sessions;
INSERT INTO shop.events
SELECT g, g % 3000, (ARRAY['view','click','buy'])[1 + g % 3], jsonb_build_object('n', g),
       now() - g * interval '1 second'
FROM generate_series(1, 150000) g;
-- indexes as a growing team leaves them
CREATE INDEX products_sku ON shop.products (sku);
CREATE INDEX products_sku_lookup ON shop.products (sku);
CREATE INDEX events_account ON shop.events (account_id);
CREATE INDEX events_account_time ON shop.events (account_id, created_at);
CREATE INDEX customers_phone ON shop.customers (phone);
"""

WORKLOAD_REPEATS = 40


def workload(conn: psycopg.Connection[object]) -> None:
    for i in range(WORKLOAD_REPEATS):
        conn.execute("SELECT * FROM shop.customers WHERE id = %s", (i + 1,)).fetchall()
        conn.execute("SELECT * FROM shop.products WHERE id = %s", (i + 1,)).fetchall()
        conn.execute(
            "SELECT count(*), sum(total) FROM shop.orders WHERE status = %s AND created_at > "
            "now() - interval '1 day'",
            ("pending",),
        ).fetchall()
        conn.execute(
            "SELECT * FROM shop.events WHERE account_id = %s ORDER BY created_at DESC LIMIT 20",
            (i,),
        ).fetchall()
    # the nightly "customer activity" report: a correlated count per customer that scans
    # orders each time, because orders.customer_id has no index
    for _ in range(2):
        conn.execute(
            "SELECT c.id, c.email, (SELECT count(*) FROM shop.orders o "
            "WHERE o.customer_id = c.id) AS orders FROM shop.customers c "
            "WHERE c.country = %s ORDER BY c.id LIMIT 120",
            ("DE",),
        ).fetchall()
    # a sessions sweep that rewrites every row twice, with autovacuum off for the table
    conn.execute("UPDATE shop.sessions SET state = 'seen', seen_at = now()")
    conn.execute("UPDATE shop.sessions SET state = 'expired'")


def fail_concurrent_build(conn: psycopg.Connection[object]) -> None:
    """A unique index build that fails on duplicate emails leaves an invalid index behind."""
    with contextlib.suppress(psycopg.errors.UniqueViolation):
        conn.execute("CREATE UNIQUE INDEX CONCURRENTLY customers_email ON shop.customers (email)")


def build_platform(
    conn: psycopg.Connection[object], say: Callable[[str], None] = lambda _: None
) -> None:
    """The sample platform with its workload, in the database of `conn` (autocommit, with
    pg_stat_statements): what the demo analyzes, and what tests/test_demo.py holds it to."""
    say("loading the sample platform")
    conn.execute(SCHEMA)
    # one statement at a time, each with its counters flushed, as separate jobs would
    for statement in DATA.split(";\n"):
        if statement.strip():
            conn.execute(statement)
            conn.execute("SELECT pg_stat_force_next_flush()")
    conn.execute("SELECT pg_stat_statements_reset()")
    say("running the workload")
    fail_concurrent_build(conn)
    workload(conn)
    conn.execute("SELECT pg_stat_force_next_flush()")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, default=Path(".demo"))
    parser.add_argument("--keep", action="store_true", help="leave the cluster running")
    args = parser.parse_args()
    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    print("demo: starting a sandbox PostgreSQL cluster", file=sys.stderr)
    box = Sandbox.create()
    try:
        box.start()
        box.psql("CREATE DATABASE shop")
        box.psql(
            "CREATE EXTENSION pg_stat_statements; CREATE EXTENSION hypopg;"
            " CREATE EXTENSION pg_qualstats",
            dbname="shop",
        )
        dsn = box.dsn("shop")
        with psycopg.connect(dsn, autocommit=True) as conn:
            build_platform(conn, say=lambda line: print(f"demo: {line}", file=sys.stderr))
        config = workdir / "opscope.yaml"
        config.write_text(
            "databases:\n"
            "  shop:\n"
            f"    dsn: postgresql://postgres@127.0.0.1:${{DEMO_PGPORT}}/shop\n"
            "postgresql:\n"
            "  thresholds:\n"
            "    large_table_bytes: 20000000   # the demo's tables are small\n"
            f"state_dir: {workdir / 'state'}\n"
        )
        env = {**os.environ, "DEMO_PGPORT": str(box.port)}
        print(
            f"demo: data ready in {time.monotonic() - started:.1f} s; running "
            "`opscope analyze db shop`\n",
            file=sys.stderr,
        )
        opscope = [sys.executable, "-m", "opscope"]
        subprocess.run([*opscope, "analyze", "db", "shop", "-c", str(config)], env=env, check=True)
        html = workdir / "report.html"
        subprocess.run(
            [*opscope, "analyze", "db", "shop", "-c", str(config), "-o", str(html)],
            env=env,
            check=True,
        )
        subprocess.run(
            [
                *opscope,
                "analyze",
                "db",
                "shop",
                "-c",
                str(config),
                "-f",
                "json",
                "-o",
                str(workdir / "report.json"),
            ],
            env=env,
            check=True,
        )
        print(f"\ndemo: HTML report: {html}", file=sys.stderr)
        if args.keep:
            print(
                f"demo: cluster left running: {dsn} (stop: pg_ctl -D {box.datadir} stop)",
                file=sys.stderr,
            )
    finally:
        if not args.keep:
            box.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

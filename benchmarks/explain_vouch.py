"""What vouching costs: `explain()` of ten statements, with the catalog check that decides
whether EXPLAIN ANALYZE may run, side by side with the bare EXPLAIN (VERBOSE) + EXPLAIN
(ANALYZE) it guards, on a database full of user objects (500 tables, 200 functions, 50 casts
and operators, 100 views) so the catalog query has something to wade through.

The check is one catalog query per statement (a second one names the objects when it
refuses; one per allowlist entry, once per connection); the baseline sends the same EXPLAINs
without it, and without opscope's parsing of the statement and of the plan.

Measured on the 2-core development machine (PostgreSQL 15 sandbox over loopback, shared with
other jobs, load average 3), five runs:
    explain() with the check:       111-143 ms
    bare EXPLAIN + EXPLAIN ANALYZE: 3-7 ms
    check: 11-14 ms per statement, ratio 20-39x
The statements read 50-row tables, so the bare EXPLAINs cost almost nothing and the ratio is
the worst case; `analyze db` vouches for at most `plans.review_statements` (10) statements,
about 0.1-0.15 s. Statements whose names reach only built-ins, in a database where no one added a
cast from a built-in type or an overload taking one, skip initdb's types altogether (~50 rows
of closure); the two that reach user casts and operators here walk 300-750.
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

import psycopg

from opscope.db.connection import connect
from opscope.db.plans.explain import explain
from opscope.db.sandbox import running_sandbox
from opscope.db.settings import SessionSettings

STATEMENTS = [
    "SELECT count(*) FROM t1 WHERE a = 5",
    "SELECT a, b, c FROM t2 WHERE b LIKE 'x%' ORDER BY c LIMIT 10",
    "SELECT t3.a, t4.b FROM t3 JOIN t4 USING (a) WHERE t3.c > now() - interval '1 day'",
    "SELECT max(a), min(b), avg(a) FROM t5 GROUP BY c",
    "SELECT * FROM v1",
    "SELECT lower(b), coalesce(b, 'none') FROM t6 WHERE a IN (1, 2, 3)",
    "SELECT a::m1, f1(a) FROM t7",
    "SELECT * FROM t8 WHERE a === 'a'::m3",
    "SELECT CASE WHEN a > 1 THEN 'big' ELSE 'small' END FROM t9",
    "SELECT a FROM t10 UNION SELECT a FROM t11",
]
REPEAT = 5


def build(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i in range(500):
            conn.execute(f"CREATE TABLE t{i} (a int, b text, c timestamptz)")
            conn.execute(
                f"INSERT INTO t{i} SELECT g, 'x' || g, now() FROM generate_series(1, 50) g"  # noqa: S608
            )
        for i in range(200):
            conn.execute(
                f"CREATE FUNCTION f{i}(int) RETURNS int LANGUAGE sql AS $$ SELECT $1 + {i} $$"
            )
        for i in range(50):
            conn.execute(f"CREATE TYPE m{i} AS ENUM ('a', 'b')")
            conn.execute(
                f"CREATE FUNCTION to_m{i}(int) RETURNS m{i} LANGUAGE sql AS $$ SELECT 'a'::m{i} $$"
            )
            conn.execute(f"CREATE CAST (int AS m{i}) WITH FUNCTION to_m{i}(int)")
            conn.execute(
                f"CREATE FUNCTION eq{i}(int, m{i}) RETURNS bool LANGUAGE sql AS $$ SELECT true $$"
            )
            conn.execute(f"CREATE OPERATOR === (leftarg = int, rightarg = m{i}, function = eq{i})")
        for i in range(100):
            conn.execute(f"CREATE VIEW v{i} AS SELECT a, f{i}(a) AS fa FROM t{i}")  # noqa: S608
        conn.execute("ANALYZE")


def timed(conn: psycopg.Connection[Any], run: Any) -> list[float]:
    times = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        for statement in STATEMENTS:
            run(conn, statement)
        times.append(time.perf_counter() - started)
    return times


def bare(analyzed: set[str]) -> Any:
    def run(conn: psycopg.Connection[Any], statement: str) -> None:
        # what explain() sends besides the check: the plan, then the run (rolled back) of
        # the statements the check let through
        conn.execute(f"EXPLAIN (FORMAT JSON, VERBOSE) {statement}".encode()).fetchall()
        if statement in analyzed:
            with conn.transaction(force_rollback=True):
                conn.execute(
                    f"EXPLAIN (FORMAT JSON, VERBOSE, ANALYZE, BUFFERS) {statement}".encode()
                )

    return run


def vouched(conn: psycopg.Connection[Any], statement: str) -> None:
    explain(conn, statement)


def main() -> int:
    with running_sandbox() as box:
        box.psql("CREATE DATABASE vouch")
        dsn = box.dsn("vouch")
        print("building 500 tables, 200 functions, 50 casts and operators ...", file=sys.stderr)
        build(dsn)
        conn = connect(dsn, SessionSettings())
        try:
            analyzed = {s for s in STATEMENTS if explain(conn, s).plan.analyzed}
            timed(conn, vouched)  # warm the caches for both
            ours = statistics.median(timed(conn, vouched))
            base = statistics.median(timed(conn, bare(analyzed)))
        finally:
            conn.close()
        per = (ours - base) / len(STATEMENTS) * 1000
        print(f"{len(STATEMENTS)} statements, {len(analyzed)} analyzed after vouching")
        print(f"explain() with the check:      {ours * 1000:.0f} ms")
        print(f"bare EXPLAIN + EXPLAIN ANALYZE: {base * 1000:.0f} ms")
        print(f"check: {per:.1f} ms per statement, ratio {ours / base:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

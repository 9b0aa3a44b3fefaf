"""Catalog scale: `opscope analyze db` on a database with 1,000 tables and 3,000 indexes.

opscope reads the catalog with one set-based query per kind of object, so the number of
queries does not grow with the number of tables. The peer measured side by side is the
per-table pattern many scripts and dashboards use (one statistics query and one index query per
table), run over the same database and the same connection type, so the ratio shows what the
set-based design saves.

Measured on the 2-core development machine (PostgreSQL 15 sandbox over loopback, 2026-11-28),
with every check of `analyze db` (the plan review and the index advisor included):
    opscope analyze db: 0.63 s, 9 catalog queries (16 statements seen by pg_stat_statements),
                        2002 findings
    per-table queries:  0.59 s, 2001 queries (statistics and indexes only, no analysis)
    ratio 0.9x
Again on 2026-12-01, with the server-health checks and settings advice added (sessions, server
counters, replication, slots, tables' autovacuum state: five more set-based queries):
    opscope analyze db: 7.65 s, 16 catalog queries (31 seen by pg_stat_statements), 2002 findings
    per-table queries:  0.48 s, 2001 queries
    ratio 0.1x
The queries take about 1 s of that; cProfile puts 21 s of a profiled run in
`opscope.fixes.group_fixes`, which compares every pair of the 2,000 distinct fixes (the
unused-index DROPs) to find those one serves for another: quadratic, and the thing to fix.
Over loopback a round trip costs ~0.1 ms, so the per-table pattern looks cheap here; every
millisecond of network round trip adds about 2 s to it and nothing measurable to opscope, whose
queries are the same for 10 tables or 10,000. opscope's time includes the whole analysis
(2,000 unused-index findings), the peer's only the reads.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import psycopg
from psycopg import sql

from opscope.db.analyze import analyze_database
from opscope.db.sandbox import running_sandbox
from opscope.db.settings import postgres_config

TABLES = 1000
INDEXES_PER_TABLE = 3  # the primary key plus two secondary indexes


def build(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        for i in range(TABLES):
            table = sql.Identifier(f"t{i}")
            conn.execute(
                sql.SQL(
                    "CREATE TABLE {t} (id int PRIMARY KEY, a int, b text, c timestamptz);"
                    "CREATE INDEX {ia} ON {t} (a);"
                    "CREATE INDEX {ibc} ON {t} (b, c);"
                    "INSERT INTO {t} SELECT g, g, 'x', now() FROM generate_series(1, 20) g"
                ).format(t=table, ia=sql.Identifier(f"t{i}_a"), ibc=sql.Identifier(f"t{i}_b_c"))
            )
        conn.execute("ANALYZE")
        conn.execute("SELECT pg_stat_statements_reset()")


def opscope_run(dsn: str, state: Path) -> tuple[float, int, int]:
    started = time.perf_counter()
    report = analyze_database(postgres_config(state_dir=state), dsn)
    elapsed = time.perf_counter() - started
    queries = int(report.summary[report.targets[0].name]["catalog_queries"])
    return elapsed, queries, len(report.findings)


def per_table_run(dsn: str) -> tuple[float, int]:
    """The pattern we avoid: list tables, then ask about each one."""
    started = time.perf_counter()
    sent = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT relid, schemaname, relname FROM pg_stat_user_tables"
        ).fetchall()
        sent += 1
        for relid, _schema, _name in tables:
            conn.execute(
                "SELECT seq_scan, idx_scan, n_live_tup, n_dead_tup, pg_relation_size(relid), "
                "pg_total_relation_size(relid) FROM pg_stat_user_tables WHERE relid = %s",
                (relid,),
            ).fetchall()
            conn.execute(
                "SELECT i.indexrelid, pg_get_indexdef(i.indexrelid), s.idx_scan, "
                "pg_relation_size(i.indexrelid) FROM pg_index i "
                "JOIN pg_stat_user_indexes s USING (indexrelid) WHERE i.indrelid = %s",
                (relid,),
            ).fetchall()
            sent += 2
    return time.perf_counter() - started, sent


def server_side_opscope_queries(dsn: str) -> int:
    """Count opscope's statements as the server saw them, independent of our own counter."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
            "WHERE query LIKE '/* opscope */%'"
        ).fetchone()
    return int(row[0]) if row else 0


def main() -> int:
    with running_sandbox() as box, TemporaryDirectory() as state:
        box.psql("CREATE DATABASE scale")
        dsn = box.dsn("scale")
        print(
            f"building {TABLES} tables with {TABLES * INDEXES_PER_TABLE} indexes ...",
            file=sys.stderr,
        )
        build(dsn)
        opscope_run(dsn, Path(state))  # warm the server's catalog caches for both
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_statements_reset()")
        ops_s, ops_q, findings = opscope_run(dsn, Path(state))
        seen = server_side_opscope_queries(dsn)
        peer_s, peer_q = per_table_run(dsn)
        print(
            f"opscope analyze db: {ops_s:.2f} s, {ops_q} catalog queries "
            f"({seen} seen by pg_stat_statements), {findings} findings"
        )
        print(
            f"per-table queries:  {peer_s:.2f} s, {peer_q} queries (statistics and indexes "
            "only, no analysis)"
        )
        print(
            f"catalog scale: opscope {ops_s:.2f} s, per-table {peer_s:.2f} s, "
            f"ratio {peer_s / ops_s:.1f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

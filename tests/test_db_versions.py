"""What differs between PostgreSQL versions, on each version the suite runs on (--pg): the
pg_stat_statements file chosen by the extension's version, what each version adds, and
opscope's own statements kept out of the workload it reads."""

from __future__ import annotations

import subprocess
import sys

from conftest import SandboxDb, found
from opscope.db.connection import SqlRunner, load_sql
from opscope.db.statements import PGSS_SERVER, pgss_server_version, read_statements


def test_each_extension_version_reads_the_file_written_for_it() -> None:
    assert pgss_server_version("1.8") == 130000
    assert pgss_server_version("1.10") == 150000
    assert pgss_server_version("1.11") == 170000
    assert pgss_server_version("1.12") == 180000
    # a newer extension than we know reads the newest file; an odd one the oldest
    assert pgss_server_version("1.13") == 180000
    assert pgss_server_version("x") == 130000
    assert "true AS toplevel" in load_sql("statements", pgss_server_version("1.8"))
    assert "blk_read_time AS" in load_sql("statements", pgss_server_version("1.10"))
    assert "shared_blk_read_time" in load_sql("statements", pgss_server_version("1.11"))
    assert "parallel_workers_launched" in load_sql("statements", pgss_server_version("1.12"))
    assert set(PGSS_SERVER.values()) == {13, 14, 15, 17, 18}


def _snapshot(db: SandboxDb) -> list[tuple[str, object]]:
    with db.connect() as conn:
        runner = SqlRunner(conn, server_version_num=conn.info.server_version)
        return [(s.query, s) for s in read_statements(runner).statements]


def test_opscope_own_statements_stay_out_of_the_workload(db: SandboxDb) -> None:
    # PostgreSQL 18 keeps a statement's text from its first keyword: a marker comment in
    # front of it is dropped, and opscope's catalog reads looked like the application's
    db.execute("CREATE TABLE t (id int PRIMARY KEY, v int)", "INSERT INTO t VALUES (1, 1)")
    with db.connect() as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
        conn.execute("SELECT v FROM t WHERE id = 1")
    db.analyze()
    proc = subprocess.run(
        [sys.executable, "-m", "opscope", "explain", db.dsn, "SELECT v FROM t WHERE id = $1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    texts = [q for q, _ in _snapshot(db)]
    assert "SELECT v FROM t WHERE id = $1" in texts
    ours = [
        q
        for q in texts
        if "opscope" in q
        or q.lstrip().upper().startswith(("EXPLAIN", "PREPARE", "DEALLOCATE"))
        or "pg_extension" in q
        or "pg_stat_statements_info" in q
        or "set_config" in q
    ]
    assert ours == []


def test_what_each_version_adds_is_read(db: SandboxDb) -> None:
    version = db.cluster.version
    db.execute("CREATE TABLE big (id int, pad text)")
    with db.connect() as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
        conn.execute("INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g")
        conn.execute("ANALYZE big")
        # a parallel plan the server cannot staff: no worker may start in this session
        for setting in (
            "parallel_setup_cost = 0",
            "parallel_tuple_cost = 0",
            "min_parallel_table_scan_size = 0",
            "max_parallel_workers_per_gather = 2",
            "max_parallel_workers = 0",
        ):
            conn.execute(f"SET {setting}".encode())
        conn.execute("SELECT count(*) FROM big WHERE pad <> 'y'").fetchall()
    by_text = dict(_snapshot(db))
    insert = next(s for q, s in by_text.items() if q.startswith("INSERT INTO big"))
    scan = next(s for q, s in by_text.items() if q.startswith("SELECT count(*) FROM big"))
    assert getattr(insert, "wal_bytes", 0) > 1_000_000
    assert getattr(scan, "read_time_ms", -1.0) >= 0.0
    since = getattr(scan, "since", None)
    planned = getattr(scan, "parallel_workers_planned", None)
    launched = getattr(scan, "parallel_workers_launched", None)
    if version >= 17:
        assert since is not None
    else:
        assert since is None
    if version >= 18:
        assert (planned, launched) == (2, 0)
    else:
        assert (planned, launched) == (None, None)

    report = db.analyze(slow_query_ms=0.001, min_calls=1)
    slow_ones = found(report, "slow_query")
    [slow] = [f for f in slow_ones if str(f.evidence["query"]).startswith("SELECT count")]
    assert slow.evidence["parallel_workers_launched"] == launched
    said = "started 0 of the 2 parallel workers" in (slow.recommendation or "")
    assert said == (version >= 18)

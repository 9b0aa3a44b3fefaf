"""slow_query from pg_stat_statements, cumulative and windowed."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from conftest import SandboxDb, found
from opscope.db.analyze import analyze_database
from opscope.db.sandbox import Sandbox
from opscope.db.settings import postgres_config
from opscope.db.statements import Statement, StatementSnapshot, diff_snapshots


def test_statement_over_one_second_is_slow(db: SandboxDb) -> None:
    db.execute("CREATE TABLE t (id int)", "INSERT INTO t SELECT generate_series(1, 1000)")
    with db.connect() as conn:
        conn.execute("SELECT pg_sleep(1.05), 'slow one'")
        for _ in range(30):
            conn.execute("SELECT count(*) FROM t WHERE id < 100")
    report = db.analyze(top_statements_min_share=0.0)
    slow = [f for f in found(report, "slow_query") if f.severity.value != "info"]
    assert len(slow) == 1
    ev = slow[0].evidence
    assert ev["query"] == "SELECT pg_sleep($1), $2"
    assert ev["calls"] == 1 and 1050 <= ev["mean_ms"] < 3000
    assert slow[0].object == f"query:{ev['queryid']}"
    assert 0 < ev["share_of_total_time"] <= 1
    # the fast statement is not slow, but it is among the top statements by total time
    top = {
        f.evidence["query"]: f for f in found(report, "slow_query") if f.severity.value == "info"
    }
    fast = top["SELECT count(*) FROM t WHERE id < $1"]
    assert fast.evidence["calls"] == 30 and fast.evidence["rank_by_total_time"] >= 2


def test_threshold_is_configurable(db: SandboxDb) -> None:
    with db.connect() as conn:
        conn.execute("SELECT pg_sleep(0.3)")
    warn = [
        f
        for f in found(db.analyze(slow_query_ms=200), "slow_query")
        if f.severity.value == "warning"
    ]
    assert [f.evidence["query"] for f in warn] == ["SELECT pg_sleep($1)"]


def test_window_reports_only_what_ran_during_it(db: SandboxDb) -> None:
    with db.connect() as conn:
        for _ in range(5):
            conn.execute("SELECT 'before the window', pg_sleep(0.01)")

    def during() -> None:
        time.sleep(0.5)
        with db.connect() as conn:
            for _ in range(7):
                conn.execute("SELECT 'during the window', pg_sleep(0.01)")
            conn.execute("SELECT 'before the window', pg_sleep(0.01)")

    worker = threading.Thread(target=during)
    worker.start()
    report = analyze_database(
        postgres_config(state_dir=db.state_dir), db.dsn, window_s=2.0, only=["slow_query"]
    )
    worker.join()
    by_query = {f.evidence["query"]: f.evidence for f in found(report, "slow_query")}
    assert by_query["SELECT $1, pg_sleep($2)"]["calls"] == 8
    assert by_query["SELECT $1, pg_sleep($2)"]["window_s"] >= 2.0


def test_missing_pg_stat_statements_is_an_error_entry_and_other_checks_run(
    cluster: Sandbox, db: SandboxDb
) -> None:
    cluster.psql("DROP EXTENSION pg_stat_statements", dbname=db.name)
    db.execute(
        "CREATE TABLE t (a int)",
        "CREATE INDEX t_a1 ON t (a)",
        "CREATE INDEX t_a2 ON t (a)",
    )
    report = db.analyze()
    errors = {e.check: e.message for e in report.errors}
    assert "slow_query" in errors
    assert "CREATE EXTENSION pg_stat_statements" in errors["slow_query"]
    assert "shared_preload_libraries" in errors["slow_query"]
    assert found(report, "duplicate_index", "public.t_a2")


def _stmt(queryid: int, calls: int, total: float, mean: float, stddev: float) -> Statement:
    return Statement(
        queryid=queryid,
        userid=10,
        username="u",
        toplevel=True,
        query=f"q{queryid}",
        calls=calls,
        total_exec_time=total,
        min_exec_time=0.0,
        max_exec_time=0.0,
        mean_exec_time=mean,
        stddev_exec_time=stddev,
        rows=calls,
        shared_blks_hit=0,
        shared_blks_read=0,
        temp_blks_read=0,
        temp_blks_written=0,
    )


def test_diff_recovers_window_mean_and_stddev() -> None:
    # before: two calls of 10 ms; after: plus two calls of 30 ms
    before = StatementSnapshot(0.0, None, (_stmt(1, 2, 20.0, 10.0, 0.0),))
    after = StatementSnapshot(
        60.0, None, (_stmt(1, 4, 80.0, 20.0, 10.0), _stmt(2, 3, 3.0, 1.0, 0.0))
    )
    diff = diff_snapshots(before, after)
    by_id = {s.queryid: s for s in diff.statements}
    assert by_id[1].calls == 2 and by_id[1].total_exec_time == 60.0
    assert by_id[1].mean_exec_time == 30.0
    assert abs(by_id[1].stddev_exec_time) < 1e-6
    assert by_id[2].calls == 3  # new in the window: counted in full
    assert diff.window_s == 60.0


def test_diff_after_reset_takes_the_second_snapshot() -> None:
    before = StatementSnapshot(0.0, None, (_stmt(1, 100, 100.0, 1.0, 0.0),))
    after = StatementSnapshot(5.0, None, (_stmt(1, 3, 3.0, 1.0, 0.0),))
    # the counters went back with no server-wide reset: see the next test
    from datetime import UTC, datetime

    reset = StatementSnapshot(5.0, datetime(2026, 1, 1, tzinfo=UTC), after.statements)
    assert diff_snapshots(before, reset).statements == after.statements


def test_diff_counts_an_entry_reset_on_its_own_or_evicted_in_full() -> None:
    # pg_stat_statements_reset(userid, dbid, queryid) or an eviction and re-add leaves
    # stats_reset alone; the entry's counters go down and all of them are from the window
    before = StatementSnapshot(
        0.0,
        None,
        (_stmt(1, 100, 100.0, 1.0, 0.0), _stmt(2, 10, 500.0, 50.0, 0.0)),
        dealloc=3,
    )
    after = StatementSnapshot(
        5.0,
        None,
        # 1: fewer calls; 2: more calls but less total time (evicted, re-added, ran 12 times)
        (_stmt(1, 3, 3.0, 1.0, 0.0), _stmt(2, 12, 120.0, 10.0, 0.0)),
        dealloc=3,
    )
    diff = diff_snapshots(before, after)
    assert diff.statements == after.statements
    assert not diff.window_incomplete
    evicted = diff_snapshots(before, replace(after, dealloc=4))
    assert evicted.window_incomplete and evicted.dealloc == 4


def test_nested_statements_get_no_share_so_shares_stay_under_100_percent(db: SandboxDb) -> None:
    db.execute(
        "CREATE FUNCTION nap() RETURNS void LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_sleep(0.02); END $$",
        "SELECT pg_stat_statements_reset()",
    )
    with db.connect() as conn:
        conn.execute("SET pg_stat_statements.track = 'all'")
        for _ in range(5):
            conn.execute("SELECT nap()")
    report = db.analyze(top_statements_min_share=0.0, slow_query_ms=10)
    evidence = [f.evidence for f in found(report, "slow_query")]
    nested = [e for e in evidence if e["nested"]]
    assert nested and all(e["share_of_total_time"] is None for e in nested)
    shares = [e["share_of_total_time"] for e in evidence if not e["nested"]]
    assert shares and sum(shares) <= 1.0 + 0.0005 * len(shares)  # each share is rounded
    titles = [f.title for f in found(report, "slow_query") if f.evidence["nested"]]
    assert all("nested" in t for t in titles)


def test_pg_stat_statements_in_another_schema(cluster: Sandbox, db: SandboxDb) -> None:
    cluster.psql(
        'DROP EXTENSION pg_stat_statements; CREATE SCHEMA "Mon";'
        ' CREATE EXTENSION pg_stat_statements SCHEMA "Mon"',
        dbname=db.name,
    )
    with db.connect() as conn:
        conn.execute("SELECT pg_sleep(0.3)")
    report = db.analyze(slow_query_ms=200)
    assert report.errors == []
    assert [f.evidence["query"] for f in found(report, "slow_query")] == ["SELECT pg_sleep($1)"]

"""Table statistics checks on a real cluster."""

from __future__ import annotations

from collections.abc import Callable

from conftest import SandboxDb, Session, flush_stats, found, objects
from opscope.db.analyze import analyze_database
from opscope.db.settings import postgres_config

TABLE_CHECKS = (
    "stale_statistics",
    "table_bloat",
    "large_table",
    "seq_scan_heavy",
    "vacuum_overdue",
    "xid_wraparound_risk",
)


def test_never_analyzed_table_is_stale_and_apply_analyzes_it(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE facts (id int, v int) WITH (autovacuum_enabled = false)",
        "INSERT INTO facts SELECT g, g FROM generate_series(1, 50000) g",
        # the trap: a tiny table nobody analyzed is not worth a finding
        "CREATE TABLE tiny (id int) WITH (autovacuum_enabled = false)",
        "INSERT INTO tiny VALUES (1), (2), (3)",
    )
    report = db.analyze()
    stale = found(report, "stale_statistics")
    assert [f.object for f in stale] == ["public.facts"]
    assert stale[0].fix_sql == "ANALYZE public.facts;"
    assert stale[0].evidence["last_analyze"] is None

    config = postgres_config(state_dir=db.state_dir)
    applied: list[str] = []
    report = analyze_database(
        config, db.dsn, only=["stale_statistics"], apply=True, echo=applied.append
    )
    assert applied == ['applying: ANALYZE "public"."facts";']
    with db.connect() as conn:
        row = conn.execute(
            "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'facts'"
        ).fetchone()
    assert row is not None and row[0] is not None
    assert not found(db.analyze(), "stale_statistics")


def test_statistics_go_stale_after_many_modifications(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE items (id int, v int) WITH (autovacuum_enabled = false)",
        "INSERT INTO items SELECT g, g FROM generate_series(1, 10000) g",
        "ANALYZE items",
    )
    assert not found(db.analyze(), "stale_statistics")
    db.execute("INSERT INTO items SELECT g, g FROM generate_series(1, 5000) g")
    stale = found(db.analyze(), "stale_statistics", "public.items")
    assert stale and stale[0].evidence["n_mod_since_analyze"] == 5000


def test_table_bloat_and_vacuum_overdue_after_mass_updates(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE sessions (id int, state text) WITH (autovacuum_enabled = false)",
        "INSERT INTO sessions SELECT g, 'new' FROM generate_series(1, 100000) g",
        "ANALYZE sessions",
        "UPDATE sessions SET state = 'seen'",
        "UPDATE sessions SET state = 'done'",
    )
    report = db.analyze()
    bloat = found(report, "table_bloat", "public.sessions")
    assert bloat, report.findings
    assert bloat[0].evidence["n_dead_tup"] == 200000
    assert bloat[0].evidence["dead_tuple_ratio"] > 0.6
    assert "VACUUM (ANALYZE) public.sessions;" in (bloat[0].fix_sql or "")
    overdue = found(report, "vacuum_overdue", "public.sessions")
    assert overdue and overdue[0].evidence["autovacuum_enabled"] is False
    assert "RESET (autovacuum_enabled)" in (overdue[0].fix_sql or "")

    db.execute("VACUUM sessions")
    after = db.analyze()
    assert not found(after, "vacuum_overdue")
    # the dead space is reusable now but the file did not shrink: still estimated as bloat
    assert found(after, "table_bloat", "public.sessions")
    db.execute("VACUUM FULL sessions", "ANALYZE sessions")
    assert not found(db.analyze(), "table_bloat")


def test_large_table_reports_growth_from_the_previous_run(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE logs (id int, body text)",
        "INSERT INTO logs SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g",
    )
    first = found(db.analyze(large_table_bytes=1 << 20), "large_table", "public.logs")
    assert first and "growth_bytes" not in first[0].evidence
    db.execute("INSERT INTO logs SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g")
    second = found(db.analyze(large_table_bytes=1 << 20), "large_table", "public.logs")
    growth = second[0].evidence["growth_bytes"]
    assert growth > 4_000_000
    assert second[0].evidence["total_bytes"] - growth == first[0].evidence["total_bytes"]


def test_seq_scan_heavy_table_names_its_statements(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE payments (id int, merchant int, amount numeric)",
        "INSERT INTO payments SELECT g, g % 1000, g FROM generate_series(1, 300000) g",
        "ANALYZE payments",
        "SELECT pg_stat_statements_reset()",
    )
    with db.connect() as conn:
        for merchant in range(12):
            conn.execute("SELECT sum(amount) FROM payments WHERE merchant = %s", (merchant,))
        flush_stats(conn)
    heavy = found(db.analyze(), "seq_scan_heavy", "public.payments")
    assert heavy
    ev = heavy[0].evidence
    assert ev["seq_scan"] >= 12 and ev["idx_scan"] == 0 and ev["seq_read_share"] == 1.0
    queries = [s["query"] for s in ev["statements"]]
    assert "SELECT sum(amount) FROM payments WHERE merchant = $1" in queries


def test_xid_wraparound_risk(db: SandboxDb) -> None:
    db.execute("CREATE TABLE old_one (id int)", "INSERT INTO old_one VALUES (1)")
    with db.connect() as conn:
        for _ in range(1200):
            conn.execute("SELECT txid_current()")
    report = db.analyze(xid_age_warning=1000, xid_age_critical=10**9)
    risky = found(report, "xid_wraparound_risk", "public.old_one")
    assert risky and risky[0].evidence["xid_age"] >= 1200
    assert risky[0].fix_sql == "VACUUM (FREEZE, VERBOSE) public.old_one;"
    db.execute("VACUUM (FREEZE) old_one")
    report = db.analyze(xid_age_warning=1000, xid_age_critical=10**9)
    assert not found(report, "xid_wraparound_risk", "public.old_one")


def test_tiny_table_triggers_nothing(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE small (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = false)",
        "INSERT INTO small SELECT g, 'v' FROM generate_series(1, 50) g",
        "UPDATE small SET v = 'w'",
        "DELETE FROM small WHERE id > 40",
    )
    with db.connect() as conn:
        for _ in range(50):
            conn.execute("SELECT * FROM small WHERE v = 'w'").fetchall()
        flush_stats(conn)
    report = db.analyze()
    for check in TABLE_CHECKS:
        assert "public.small" not in objects(report, check), check


def test_a_table_locked_by_another_session_does_not_stall_the_report(
    db: SandboxDb, lock_holder: Callable[..., Session]
) -> None:
    db.execute(
        "CREATE TABLE busy (id int PRIMARY KEY, v text)",
        "INSERT INTO busy SELECT g, 'v' FROM generate_series(1, 10000) g",
        "ANALYZE busy",
        # told apart only by their predicates, which cannot be read while the table is locked
        "CREATE INDEX busy_v ON busy (v)",
        "CREATE INDEX busy_v_partial ON busy (v) WHERE v <> 'x'",
        "CREATE TABLE other (a int)",
        "CREATE INDEX other_a1 ON other (a)",
        "CREATE INDEX other_a2 ON other (a)",
    )
    # a second session holds the lock a VACUUM FULL or ALTER TABLE would hold
    holder = lock_holder("busy")
    report = db.analyze()
    holder.release()
    # the only gap is the plan of the statement that filled busy, and it is said
    for error in report.errors:
        assert error.check.startswith("plan_"), error
        assert "INSERT INTO busy" not in error.message  # no statement text in the message
        assert "lock timeout" in error.message
    assert found(report, "duplicate_index", "public.other_a2")
    assert not found(report, "duplicate_index", "public.busy_v_partial")
    assert not found(report, "redundant_index", "public.busy_v_partial")
    sizes = db.analyze(large_table_bytes=1)
    busy = found(report, "large_table", "public.busy") or found(sizes, "large_table", "public.busy")
    assert busy and busy[0].evidence["total_bytes"] > 0


def test_autovacuum_disabled_with_off_is_recognised(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE quiet (id int, state text) WITH (autovacuum_enabled = off)",
        "INSERT INTO quiet SELECT g, 'new' FROM generate_series(1, 20000) g",
        "ANALYZE quiet",
        "UPDATE quiet SET state = 'old'",
    )
    report = db.analyze()
    overdue = found(report, "vacuum_overdue", "public.quiet")
    assert overdue and overdue[0].evidence["autovacuum_enabled"] is False
    assert "RESET (autovacuum_enabled)" in (overdue[0].fix_sql or "")
    assert "disabled for it" in overdue[0].detail
    stale = found(report, "stale_statistics", "public.quiet")
    assert stale and stale[0].evidence["autovacuum_enabled"] is False


def test_xid_age_counts_the_toast_table(db: SandboxDb) -> None:
    db.execute("CREATE TABLE docs (id int, body text)", "INSERT INTO docs VALUES (1, 'x')")
    with db.connect() as conn:
        for _ in range(1200):
            conn.execute("SELECT txid_current()")
    # the heap is frozen, its TOAST table is not
    db.execute("VACUUM (FREEZE, PROCESS_TOAST false) docs")
    report = db.analyze(xid_age_warning=1000, xid_age_critical=10**9)
    risky = found(report, "xid_wraparound_risk", "public.docs")
    assert risky and risky[0].evidence["xid_age"] >= 1200


def test_partitioned_parent_analyzed_and_sized_leaves_checked_for_heap(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE meas (id int, body text) PARTITION BY RANGE (id)",
        "CREATE TABLE meas_1 PARTITION OF meas FOR VALUES FROM (0) TO (20000)",
        "CREATE TABLE meas_2 PARTITION OF meas FOR VALUES FROM (20000) TO (40000)",
        "INSERT INTO meas SELECT g, repeat('x', 100) FROM generate_series(1, 39999) g",
        "ANALYZE meas_1",
        "ANALYZE meas_2",
    )
    report = db.analyze(large_table_bytes=3 << 20)
    stale = found(report, "stale_statistics", "public.meas")
    assert stale and stale[0].fix_sql == "ANALYZE public.meas;"
    assert stale[0].evidence["rows"] >= 39999
    large = found(report, "large_table", "public.meas")
    parts = [
        found(db.analyze(large_table_bytes=1), "large_table", f"public.meas_{n}")[0] for n in (1, 2)
    ]
    assert large and large[0].evidence["partitions"] == 2
    assert large[0].evidence["total_bytes"] == sum(p.evidence["total_bytes"] for p in parts)
    # heap checks never name the parent, which has no heap
    xid = db.analyze(xid_age_warning=1, xid_age_critical=10**9)
    assert not found(xid, "xid_wraparound_risk", "public.meas")
    assert found(xid, "xid_wraparound_risk", "public.meas_1")
    db.execute("ANALYZE meas")
    assert not found(db.analyze(), "stale_statistics", "public.meas")

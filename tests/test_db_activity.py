"""The server-health checks of `analyze db` on real sessions: a transaction left open, an
UPDATE blocked behind another session's lock (and a chain behind it), a long query, an
inactive replication slot holding WAL, a connection count near a lowered max_connections,
a cache too small for the data, sorts that spill to disk, and a table that bloats. Each has
its near miss that must not be reported."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conftest import SandboxDb, Session, found
from opscope.db.activity import Backend, Lock, blocking_chains
from opscope.db.analyze import analyze_database
from opscope.db.health_settings import HealthSettings
from opscope.db.sandbox import Sandbox
from opscope.db.settings import DbThresholds, PostgresSettings, postgres_config
from opscope.findings import Report

ACTIVITY = ["idle_in_transaction", "long_running_query", "blocked_queries"]


def analyze(
    dsn: str, state: Path, only: list[str], thresholds: DbThresholds | None = None, **health: Any
) -> Report:
    settings = PostgresSettings(
        health=HealthSettings(**health), thresholds=thresholds or DbThresholds()
    )
    return analyze_database(postgres_config(settings, state_dir=state), dsn, only=only)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the situation never arose"
        time.sleep(0.05)


def test_a_session_idle_in_transaction_is_reported_with_its_age(
    db: SandboxDb, idle_in_transaction: Callable[..., Session]
) -> None:
    db.execute("CREATE TABLE t (id int PRIMARY KEY, a int)", "INSERT INTO t VALUES (1, 1)")
    idle = idle_in_transaction("UPDATE t SET a = 2 WHERE id = 1")
    # the near misses: a session idle outside any transaction, and a transaction younger
    # than the threshold
    with db.connect() as plain:
        plain.execute("SELECT 1")
        time.sleep(1.3)
        young = idle_in_transaction("SELECT 1")
        report = analyze(db.dsn, db.state_dir, ACTIVITY, idle_in_transaction_s=1.0)
    hits = found(report, "idle_in_transaction")
    assert [f.object for f in hits] == [f"pid:{idle.pid}"]
    f = hits[0]
    assert f.evidence["state"] == "idle in transaction"
    assert float(f.evidence["state_age_s"]) >= 1.0
    assert f.evidence["query"] == "UPDATE t SET a = 2 WHERE id = 1"
    assert f.fix_sql is not None and "idle_in_transaction_session_timeout" in f.fix_sql
    assert young.pid not in {int(h.evidence["pid"]) for h in hits}
    assert not found(analyze(db.dsn, db.state_dir, ACTIVITY), "idle_in_transaction")


def test_an_update_blocked_behind_a_lock_is_reported_with_its_chain(
    db: SandboxDb,
    idle_in_transaction: Callable[..., Session],
    long_query: Callable[..., Session],
) -> None:
    db.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int)",
               "INSERT INTO accounts VALUES (1, 100), (2, 100)")  # fmt: skip
    holder = idle_in_transaction("UPDATE accounts SET balance = 0 WHERE id = 1")
    first = long_query("UPDATE accounts SET balance = 1 WHERE id = 1")
    # the near miss: a blocked statement that has waited less than blocked_min_wait_s
    assert not found(analyze(db.dsn, db.state_dir, ACTIVITY), "blocked_queries")
    second = long_query("UPDATE accounts SET balance = 2 WHERE id = 1")
    time.sleep(0.6)
    report = analyze(db.dsn, db.state_dir, ACTIVITY, blocked_min_wait_s=0.5, long_query_s=0.1)
    chains = found(report, "blocked_queries")
    assert len(chains) == 1
    chain = chains[0]
    assert chain.object == "public.accounts"
    head = chain.evidence["head"]
    assert head["pid"] == holder.pid
    assert head["query"] == "UPDATE accounts SET balance = 0 WHERE id = 1"
    assert head["state"] == "idle in transaction"
    waiters = {w["pid"]: w for w in chain.evidence["waiters"]}
    assert set(waiters) == {first.pid, second.pid}
    # the first waits for the holder's transaction to end; the second queues behind it
    assert waiters[first.pid]["waits_for_pid"] == holder.pid
    assert waiters[first.pid]["lock_mode"] == "ShareLock"
    assert waiters[second.pid]["waits_for_pid"] == first.pid
    assert waiters[second.pid]["lock_mode"] == "ExclusiveLock"
    assert chain.evidence["depth"] == 2
    assert str(holder.pid) in chain.title and "2 sessions blocked" in chain.title
    # sessions that wait for a lock are blocked_queries', not long_running_query's
    assert not found(report, "long_running_query")
    # the head, idle in transaction and blocking others, is critical
    idle = found(report, "idle_in_transaction")
    assert idle == [] or idle[0].severity == "critical"


def test_a_table_lock_chain_names_the_modes() -> None:
    """Pure: a LOCK TABLE holder, an UPDATE waiting for it, a SELECT queued behind both."""

    def backend(pid: int, state: str, blocked_by: tuple[int, ...], query: str) -> Backend:
        return Backend(pid, "db", "app", "shop", None, "client backend", state,
                       "Lock" if blocked_by else None, "relation" if blocked_by else None,
                       query, 10.0, 10.0, 9.0, 9.0, blocked_by, False)  # fmt: skip

    backends = [
        backend(10, "idle in transaction", (), "LOCK TABLE t IN ACCESS EXCLUSIVE MODE"),
        backend(20, "active", (10,), "UPDATE t SET a = 1"),
        backend(30, "active", (10, 20), "SELECT * FROM t"),
        backend(40, "active", (), "SELECT 1"),
    ]
    locks = [
        Lock(10, "relation", "AccessExclusiveLock", True, "public.t", None, None),
        Lock(20, "relation", "RowExclusiveLock", False, "public.t", None, None),
        Lock(30, "relation", "AccessShareLock", False, "public.t", None, None),
    ]
    (chain,) = blocking_chains(backends, locks)
    assert chain.head.pid == 10
    assert [(w.pid, lock.mode if lock else None, parent) for w, lock, parent in chain.waiters] == [
        (20, "RowExclusiveLock", 10),
        (30, "AccessShareLock", 10),
    ]
    assert [h.mode for h in chain.held] == ["AccessExclusiveLock"]
    assert chain.objects == ["public.t"]
    # a cycle the deadlock detector has not broken yet still has one head
    cycle = [backend(1, "active", (2,), "a"), backend(2, "active", (1,), "b")]
    assert [c.head.pid for c in blocking_chains(cycle, [])] == [1]


def test_a_long_query_is_reported_and_a_short_one_is_not(
    db: SandboxDb, long_query: Callable[..., Session]
) -> None:
    running = long_query("SELECT pg_sleep(600)")
    time.sleep(1.2)
    report = analyze(db.dsn, db.state_dir, ACTIVITY, long_query_s=1.0)
    hits = found(report, "long_running_query")
    assert [f.object for f in hits] == [f"pid:{running.pid}"]
    assert hits[0].evidence["query"] == "SELECT pg_sleep(600)"
    assert float(hits[0].evidence["query_age_s"]) >= 1.0
    assert "pg_cancel_backend" in hits[0].recommendation
    # the near miss: under the default threshold (5 minutes) it is nothing yet
    assert not found(analyze(db.dsn, db.state_dir, ACTIVITY), "long_running_query")


def test_an_inactive_slot_holding_wal_is_reported(db: SandboxDb) -> None:
    holding = "opscope_" + uuid.uuid4().hex[:8]
    fresh = holding + "_fresh"
    with db.connect() as conn:
        conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", (holding,))
        try:
            conn.execute(
                "CREATE TABLE w AS SELECT g, md5(g::text) FROM generate_series(1, 200000) g"
            )
            # the near miss: a slot made after the writes (and a checkpoint: a new slot
            # keeps WAL from the last checkpoint's redo point) holds next to nothing
            conn.execute("CHECKPOINT")
            conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", (fresh,))
            try:
                report = analyze(
                    db.dsn, db.state_dir, ["replication_slot_inactive"],
                    slot_retained_bytes=8 << 20,
                )  # fmt: skip
            finally:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (fresh,))
        finally:
            conn.execute("SELECT pg_drop_replication_slot(%s)", (holding,))
    hits = found(report, "replication_slot_inactive")
    assert [f.object for f in hits] == [holding]
    assert float(hits[0].evidence["retained_bytes"]) >= 8 << 20
    assert hits[0].fix_sql == f"SELECT pg_drop_replication_slot('{holding}');"


# --- a dedicated small cluster: few connections, a tiny cache ---------------------------


@pytest.fixture(scope="module")
def small() -> Iterator[Sandbox]:
    box = Sandbox.create(settings={"max_connections": "12", "shared_buffers": "1MB"})
    try:
        box.start()
        yield box
    finally:
        box.stop()


def test_connections_near_a_lowered_max_connections(small: Sandbox, tmp_path: Path) -> None:
    dsn = small.dsn()
    only = ["connection_saturation", "max_connections_advice"]
    # 12 slots, 3 reserved for superusers: 9 usable. opscope's own session takes one.
    held = [psycopg.connect(dsn, autocommit=True, application_name="shop") for _ in range(5)]
    try:
        near = analyze(dsn, tmp_path / "near", only)
        assert not found(near, "connection_saturation")  # 6 of 9: the near miss
        assert not found(near, "max_connections_advice")
        held += [psycopg.connect(dsn, autocommit=True, application_name="batch") for _ in range(2)]
        report = analyze(dsn, tmp_path / "full", only)
    finally:
        for conn in held:
            conn.close()
    (f,) = found(report, "connection_saturation")
    assert f.severity == "warning"
    assert f.evidence["connections"] == 8 and f.evidence["usable"] == 9
    assert f.evidence["max_connections"] == 12
    assert f.evidence["by_application"]["shop"] == 5
    assert f.evidence["by_application"]["batch"] == 2
    assert f.evidence["by_state"]["idle"] == 7
    assert "PgBouncer" in f.recommendation
    (advice,) = found(report, "max_connections_advice")
    assert advice.evidence["peak_connections"] == 8
    assert advice.fix_sql == "ALTER SYSTEM SET max_connections = 15;  -- takes a restart"
    assert "PgBouncer" in advice.recommendation
    # the peak is remembered: a later quiet run still knows it
    again = analyze(dsn, tmp_path / "full", only)
    assert not found(again, "connection_saturation")
    assert found(again, "max_connections_advice")[0].evidence["peak_connections"] == 8


def test_a_cache_smaller_than_the_data(small: Sandbox, tmp_path: Path) -> None:
    name = "cache_" + uuid.uuid4().hex[:8]
    small.psql(f"CREATE DATABASE {name}")
    dsn = small.dsn(name)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE big AS SELECT g, md5(g::text) AS t FROM generate_series(1, 300000) g"
            )
            for _ in range(6):
                conn.execute("SELECT count(*) FROM big WHERE t LIKE 'ab%'")
            conn.execute("SELECT pg_stat_force_next_flush()")
        only = ["low_cache_hit_ratio", "shared_buffers_advice", "effective_cache_size_advice"]
        report = analyze(dsn, tmp_path, only, cache_min_blocks=10_000)
    finally:
        small.psql(f"DROP DATABASE {name} WITH (FORCE)")
    (low,) = found(report, "low_cache_hit_ratio")
    assert float(low.evidence["cache_hit_ratio"]) < 0.99
    (advice,) = found(report, "shared_buffers_advice")
    assert advice.evidence["shared_buffers_bytes"] == 1 << 20
    assert advice.evidence["server_memory_source"] == "this host, where the server runs"
    wanted = int(advice.evidence["recommended_bytes"])
    assert int(advice.evidence["database_bytes"]) < wanted
    assert advice.fix_sql == (
        f"ALTER SYSTEM SET shared_buffers = '{wanted >> 20}MB';  -- takes a restart"
    )
    # the near miss: the database is far smaller than effective_cache_size (4 GB)
    assert not found(report, "effective_cache_size_advice")


def test_a_well_cached_database_gets_no_cache_advice(db: SandboxDb) -> None:
    db.execute("CREATE TABLE small AS SELECT g FROM generate_series(1, 1000) g")
    with db.connect() as conn:
        for _ in range(300):
            conn.execute("SELECT count(*) FROM small")
        conn.execute("SELECT pg_stat_force_next_flush()")
    only = ["low_cache_hit_ratio", "shared_buffers_advice"]
    report = analyze(db.dsn, db.state_dir, only, cache_min_blocks=1000)
    assert report.summary[db.name]["cache_hit_ratio"] > 0.99
    assert not report.findings


# --- settings from the workload ---------------------------------------------------------


def _sort_plan(conn: psycopg.Connection[Any], query: str) -> str:
    return "\n".join(str(r[0]) for r in conn.execute(f"EXPLAIN (ANALYZE, COSTS OFF) {query}"))


def test_sorts_that_spill_get_a_work_mem_that_removes_the_spill(db: SandboxDb) -> None:
    query = "SELECT * FROM events ORDER BY payload"
    db.execute(
        "CREATE TABLE events AS SELECT g AS id, md5(g::text) AS payload "
        "FROM generate_series(1, 200000) g",
        "ANALYZE events",
        # the near miss: maintenance that writes temp files (an index build) is
        # maintenance_work_mem's business
        "CREATE TABLE copy AS SELECT * FROM events",
        "CREATE INDEX ON copy (payload)",
    )
    with db.connect() as conn:
        assert "external merge" in _sort_plan(conn, query)
        for _ in range(3):
            conn.execute(query).fetchall()
        conn.execute("SELECT * FROM events ORDER BY id LIMIT 10")  # fits: the near miss
    report = analyze(db.dsn, db.state_dir, ["work_mem_advice"])
    (advice,) = found(report, "work_mem_advice")
    statements = advice.evidence["statements"]
    assert [s["query"] for s in statements] == [query]
    value = str(advice.evidence["recommended"])
    assert advice.fix_sql == f"ALTER SYSTEM SET work_mem = '{value}';\nSELECT pg_reload_conf();"
    with db.connect() as conn:
        conn.execute(f"SET work_mem = '{value}'".encode())
        plan = _sort_plan(conn, query)
    assert "quicksort" in plan and "Disk" not in plan, plan
    # with little memory, server-wide is too much: the role gets it instead
    small = analyze(db.dsn, db.state_dir, ["work_mem_advice"], server_memory_bytes=1 << 30)
    (per_role,) = found(small, "work_mem_advice")
    assert per_role.fix_sql == f"ALTER ROLE postgres SET work_mem = '{value}';"


def test_a_table_that_bloats_gets_its_own_scale_factor(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE churn AS SELECT g AS id, g AS v FROM generate_series(1, 100000) g",
        "UPDATE churn SET v = v + 1",
        # the near miss: as bloated, but already told to vacuum early (the cause is elsewhere)
        "CREATE TABLE tuned WITH (autovacuum_vacuum_scale_factor = 0.01) AS "
        "SELECT g AS id, g AS v FROM generate_series(1, 100000) g",
        "UPDATE tuned SET v = v + 1",
        # and a table with few changes
        "CREATE TABLE calm AS SELECT g AS id, g AS v FROM generate_series(1, 100000) g",
    )
    report = analyze(db.dsn, db.state_dir, ["autovacuum_advice"])
    (advice,) = found(report, "autovacuum_advice")
    assert advice.object == "public.churn"
    assert advice.fix_sql == (
        "ALTER TABLE public.churn SET (autovacuum_vacuum_scale_factor = 0.05);"
    )
    assert advice.evidence["n_dead_tup"] == 100000
    assert advice.evidence["scale_factor"] == 0.2


def test_a_password_in_a_sessions_statement_is_masked(
    db: SandboxDb, idle_in_transaction: Callable[..., Session]
) -> None:
    role = "r_" + uuid.uuid4().hex[:8]
    idle = idle_in_transaction(f"CREATE ROLE {role} PASSWORD 'hunter2-very-secret'")
    time.sleep(1.1)
    report = analyze(db.dsn, db.state_dir, ACTIVITY, idle_in_transaction_s=1.0)
    (f,) = [h for h in found(report, "idle_in_transaction") if h.object == f"pid:{idle.pid}"]
    assert "hunter2" not in report.to_json()
    assert str(f.evidence["query"]).startswith(f"CREATE ROLE {role} PASSWORD")

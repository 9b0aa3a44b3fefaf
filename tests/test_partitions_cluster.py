"""Partitioning on a real cluster: a time series with a retention delete gets a plan whose
DDL and migration run; a tenant table gets list partitions; tables read by key, or filtered by
time only now and then, get nothing; partitioned tables that run out of ranges, fill their
default, have far too many partitions or are scanned without pruning get partition_health."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from conftest import SandboxDb, found
from opscope.db.analyze import analyze_database
from opscope.db.settings import PartitionSettings, PostgresSettings, postgres_config
from opscope.findings import Finding, Report

SMALL = {"min_table_bytes": 1 << 20}


def analyze(db: SandboxDb, check: str, **partitioning: Any) -> Report:
    settings = PostgresSettings(partitioning=PartitionSettings(**{**SMALL, **partitioning}))
    return analyze_database(postgres_config(settings, state_dir=db.state_dir), db.dsn, only=[check])


def run(db: SandboxDb, query: str, values: list[list[Any]]) -> None:
    with db.connect() as conn:
        for v in values:
            cur = conn.execute(query.encode(), v)
            if cur.description:
                cur.fetchall()


def events(db: SandboxDb, rows: int, days: float) -> None:
    """`rows` rows in events whose created_at runs evenly over the last `days` days."""
    db.execute(
        "CREATE TABLE events (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL, "
        "account_id int NOT NULL, payload text)",
    )
    with db.connect() as conn:
        conn.execute(
            "INSERT INTO events (created_at, account_id, payload) SELECT now() - g * "
            "make_interval(secs => %s), g %% 50, 'p' || g FROM generate_series(1, %s) g",
            [days * 86400 / rows, rows],
        )
    db.execute(
        "CREATE INDEX events_created_at_idx ON events (created_at)",
        "ANALYZE events",
        "SELECT pg_stat_statements_reset()",
    )


def recent_reads(db: SandboxDb, times: int = 30) -> None:
    now = datetime.now(UTC)
    run(
        db,
        "SELECT count(*) FROM events WHERE created_at >= %s",
        [[now - timedelta(hours=6 + i)] for i in range(times)],
    )
    run(db, "SELECT payload FROM events WHERE id = %s", [[i] for i in range(1, 6)])


def test_a_time_series_with_retention_gets_a_plan_whose_ddl_covers_the_data(
    db: SandboxDb,
) -> None:
    events(db, 3_000_000, 90)
    recent_reads(db)
    with db.connect() as conn:
        conn.execute(
            "DELETE FROM events WHERE created_at < now() - %s::interval", ["89 days 23 hours"]
        )
    report = analyze(db, "partition_candidate")
    [f] = found(report, "partition_candidate", "public.events")
    ev = f.evidence
    assert (ev["strategy"], ev["key"], ev["interval"]) == ("range", "created_at", "week")
    assert ev["retention"] is True and f.severity.value == "warning"
    assert ev["values_from"] == "min and max"
    # 3M rows over 90 days: about 33,000 a day, 233,000 a week
    assert 200_000 < ev["expected_partition_rows"] < 260_000
    assert 13 <= ev["partitions"] <= 20
    assert ev["constraints"] == [
        {
            "index": "events_pkey",
            "kind": "primary key",
            "columns": ["id"],
            "becomes": ["id", "created_at"],
        }
    ]
    locks = [step["locks"] for step in ev["migration"]]
    assert any("SHARE UPDATE EXCLUSIVE" in lock for lock in locks)
    assert any("ACCESS EXCLUSIVE" in lock for lock in locks)
    assert f.fix_sql is not None
    # the DDL runs beside the table, and its ranges take every row: none is left to default
    db.execute(f.fix_sql, "INSERT INTO events_partitioned SELECT * FROM events")
    with db.connect() as conn:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM events_partitioned), (SELECT count(*) FROM "
            "events_default), (SELECT count(*) FROM events)"
        ).fetchone()
    assert counts is not None and counts[0] == counts[2] and counts[1] == 0


def test_the_attach_migration_runs_and_keeps_every_row(db: SandboxDb) -> None:
    events(db, 200_000, 60)
    recent_reads(db)
    report = analyze(db, "partition_candidate", min_partition_rows=1000)
    [f] = found(report, "partition_candidate", "public.events")
    assert f.evidence["interval"] == "day" and f.fix_sql is not None
    steps = f.evidence["migration"]
    cut = datetime.fromisoformat(f.evidence["attach_before"])
    # step 1: the parent and its partitions from the cut on (the table becomes the past)
    parent = [
        line
        for line in f.fix_sql.splitlines()
        if "PARTITION OF" not in line
        or ("DEFAULT" not in line and line.split("FROM ('")[1][:10] >= f"{cut:%Y-%m-%d}")
    ]
    db.execute(*parent)
    with db.connect() as conn:
        for step in steps[1:]:
            if step["sql"] and not step["sql"].startswith(("--", "INSERT")):
                conn.execute(step["sql"].encode())
        kind = conn.execute("SELECT relkind FROM pg_class WHERE relname = 'events'").fetchone()
        total = conn.execute("SELECT count(*) FROM events").fetchone()
        legacy = conn.execute(
            "SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = 'events_legacy'"
        ).fetchone()
        conn.execute(
            "INSERT INTO events (created_at, account_id) VALUES (%s, 1)",
            [cut + timedelta(hours=1)],
        )
        landed = conn.execute(
            "SELECT tableoid::regclass::text FROM events WHERE created_at = %s",
            [cut + timedelta(hours=1)],
        ).fetchone()
    assert kind == ("p",) and total == (200_000,)
    assert legacy is not None and "MINVALUE" in legacy[0]
    assert landed is not None and landed[0] == f"events_p{cut:%Y%m%d}"


def test_pg_partman_gets_its_configuration(db: SandboxDb) -> None:
    if not db.cluster.has_extension("pg_partman"):
        pytest.skip("pg_partman is not installed here (scripts/setup installs it for 15)")
    db.execute("CREATE SCHEMA partman", "CREATE EXTENSION pg_partman SCHEMA partman")
    events(db, 150_000, 30)
    recent_reads(db)
    report = analyze(db, "partition_candidate", min_partition_rows=1000)
    [f] = found(report, "partition_candidate", "public.events")
    config = f.evidence["partman"]
    assert isinstance(config, str) and "create_parent" in config
    assert f.fix_sql is not None
    # the parent of the DDL, then pg_partman makes the partitions
    db.execute(*[line for line in f.fix_sql.splitlines() if "PARTITION OF" not in line])
    db.execute(config)
    with db.connect() as conn:
        made = conn.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'events_partitioned'::regclass"
        ).fetchone()
        conn.execute("INSERT INTO events_partitioned SELECT * FROM events")
        left = conn.execute("SELECT count(*) FROM events_partitioned_default").fetchone()
    assert made is not None and made[0] >= 30
    assert left == (0,)


def test_a_tenant_table_gets_list_partitions(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE orders (id bigserial PRIMARY KEY, tenant_id int NOT NULL, total int)",
        "INSERT INTO orders (tenant_id, total) SELECT g % 6, g FROM generate_series(1, 120000) g",
        "ANALYZE orders",
        "SELECT pg_stat_statements_reset()",
    )
    run(db, "SELECT sum(total) FROM orders WHERE tenant_id = %s", [[i % 6] for i in range(30)])
    report = analyze(db, "partition_candidate")
    [f] = found(report, "partition_candidate", "public.orders")
    assert f.evidence["strategy"] == "list" and f.evidence["partitions"] == 6
    assert f.fix_sql is not None
    db.execute(f.fix_sql, "INSERT INTO orders_partitioned SELECT * FROM orders")
    with db.connect() as conn:
        left = conn.execute("SELECT count(*) FROM orders_default").fetchone()
    assert left == (0,)


def test_a_big_table_read_by_key_or_seldom_by_time_gets_nothing(db: SandboxDb) -> None:
    events(db, 100_000, 60)
    run(db, "SELECT payload FROM events WHERE id = %s", [[i] for i in range(1, 40)])
    # a time filter in a small share of the calls is not a workload to partition for
    run(db, "SELECT count(*) FROM events WHERE created_at >= %s", [[datetime.now(UTC)]])
    # and account_id, though it has few values, is never what the workload filters on
    report = analyze(db, "partition_candidate")
    assert found(report, "partition_candidate") == []
    # the same table filtered by time in most calls would be proposed: the trap can fail
    recent_reads(db, times=60)
    assert found(analyze(db, "partition_candidate"), "partition_candidate")


def test_a_small_or_stale_table_gets_nothing(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE old_events (id int, created_at timestamptz)",
        # values ending a year ago, and no inserts counted since the statistics were reset
        "INSERT INTO old_events SELECT g, now() - interval '1 year' - g * interval '1 minute' "
        "FROM generate_series(1, 50000) g",
        "ANALYZE old_events",
        "SELECT pg_stat_reset()",
        "SELECT pg_stat_statements_reset()",
    )
    run(
        db,
        "SELECT count(*) FROM old_events WHERE created_at >= %s",
        [[datetime.now(UTC) - timedelta(days=400)]] * 10,
    )
    assert found(analyze(db, "partition_candidate"), "partition_candidate") == []
    assert (
        found(analyze(db, "partition_candidate", min_table_bytes=1 << 30), "partition_candidate")
        == []
    )


def partitioned(db: SandboxDb, days_back: int, days_ahead: int, default: bool) -> None:
    """events_p: daily range partitions from `days_back` days ago to `days_ahead` days on."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    statements = [
        "CREATE TABLE events_p (id bigint, created_at timestamptz NOT NULL, v int) "
        "PARTITION BY RANGE (created_at)"
    ]
    for n in range(-days_back, days_ahead):
        lower, upper = today + timedelta(days=n), today + timedelta(days=n + 1)
        statements.append(
            f"CREATE TABLE events_p_{lower:%Y%m%d} PARTITION OF events_p FOR VALUES FROM "
            f"('{lower.isoformat()}') TO ('{upper.isoformat()}')"
        )
    if default:
        statements.append("CREATE TABLE events_p_default PARTITION OF events_p DEFAULT")
    db.execute(*statements)


def health_of(db: SandboxDb, **partitioning: Any) -> dict[str, Finding]:
    report = analyze(db, "partition_health", **partitioning)
    assert report.errors == []
    return {str(f.evidence["problem"]): f for f in found(report, "partition_health")}


def test_ranges_that_end_tomorrow_are_about_to_run_out(db: SandboxDb) -> None:
    partitioned(db, days_back=5, days_ahead=2, default=False)
    problems = health_of(db)
    f = problems["runs_out"]
    assert f.severity.value == "warning" and f.object == "public.events_p"
    assert f.fix_sql is not None and f.fix_sql.count("CREATE TABLE") >= 4
    # the fix reaches past the runway: run it, and the finding is gone
    db.execute(f.fix_sql)
    assert "runs_out" not in health_of(db)


def test_ranges_far_ahead_and_maxvalue_do_not_run_out(db: SandboxDb) -> None:
    partitioned(db, days_back=2, days_ahead=10, default=False)
    assert "runs_out" not in health_of(db)
    db.execute(
        "CREATE TABLE events_p_rest PARTITION OF events_p FOR VALUES FROM "
        f"('{(datetime.now(UTC) + timedelta(days=10)).date()}') TO (MAXVALUE)"
    )
    assert "runs_out" not in health_of(db, runway_days=30)


def test_a_default_partition_that_keeps_growing(db: SandboxDb) -> None:
    partitioned(db, days_back=2, days_ahead=10, default=True)
    db.execute(
        "INSERT INTO events_p SELECT g, now(), 1 FROM generate_series(1, 500) g",
        "INSERT INTO events_p SELECT g, now() + interval '40 days', 1 "
        "FROM generate_series(1, 300) g",
        "ANALYZE events_p",
    )
    f = health_of(db)["default_fills"]
    assert f.evidence["default_partition"] == "public.events_p_default"
    assert f.evidence["inserted"] == 300


def test_an_empty_default_partition_is_fine(db: SandboxDb) -> None:
    partitioned(db, days_back=2, days_ahead=10, default=True)
    db.execute("INSERT INTO events_p SELECT g, now(), 1 FROM generate_series(1, 500) g")
    assert "default_fills" not in health_of(db)


def test_far_too_many_partitions_for_the_data(db: SandboxDb) -> None:
    partitioned(db, days_back=40, days_ahead=10, default=False)
    db.execute(
        "INSERT INTO events_p SELECT g, now() - g * interval '1 hour', 1 "
        "FROM generate_series(1, 900) g"
    )
    f = health_of(db)["too_many"]
    assert f.evidence["partitions"] == 50
    # tiny partitions are fine when there are few of them
    assert "too_many" not in health_of(db, min_partition_bytes=1)


def test_far_too_few_partitions(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE logs_p (tenant int, v text) PARTITION BY LIST (tenant)",
        "CREATE TABLE logs_p_all PARTITION OF logs_p DEFAULT",
        "INSERT INTO logs_p SELECT g % 9, repeat('x', 200) FROM generate_series(1, 20000) g",
    )
    f = health_of(db, max_partition_bytes=1 << 20)["too_few"]
    assert f.evidence["largest_partition"] == "public.logs_p_all"
    assert "too_few" not in health_of(db)


def test_statements_that_scan_every_partition(db: SandboxDb) -> None:
    partitioned(db, days_back=6, days_ahead=10, default=False)
    db.execute(
        "INSERT INTO events_p SELECT g, now() - g * interval '1 minute', g FROM "
        "generate_series(1, 3000) g",
        "ANALYZE events_p",
        "SELECT pg_stat_statements_reset()",
    )
    now = datetime.now(UTC)
    # an expression of the key prunes nothing; the key itself, even as $1, prunes
    run(db, "SELECT count(*) FROM events_p WHERE date_trunc('day', created_at) = %s", [[now]] * 5)
    run(db, "SELECT count(*) FROM events_p WHERE created_at >= %s", [[now]] * 5)
    report = analyze(db, "partition_health")
    pruning = [
        f for f in found(report, "partition_health") if f.evidence["problem"] == "no_pruning"
    ]
    assert [str(f.evidence["query"]).split(" WHERE ")[1].split("(")[0] for f in pruning] == [
        "date_trunc"
    ]
    assert pruning[0].evidence["partitions_scanned"] == 16


def test_the_checks_are_quiet_without_partitioned_or_large_tables(db: SandboxDb) -> None:
    db.execute("CREATE TABLE t (id int)")
    with psycopg.connect(db.dsn):
        pass
    assert found(analyze(db, "partition_health"), "partition_health") == []
    assert found(analyze(db, "partition_candidate"), "partition_candidate") == []

"""Safety of the sessions opscope opens on a watched database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from conftest import SandboxDb, Session
from opscope.db.analyze import analyze_database
from opscope.db.connection import TargetConnectionError, connect, describe_dsn
from opscope.db.settings import DbThresholds, PostgresSettings, SessionSettings, postgres_config


def test_sessions_are_read_only_with_timeouts_and_a_name(db: SandboxDb) -> None:
    db.execute("CREATE TABLE t (a int)")
    settings = SessionSettings(statement_timeout_ms=1234, lock_timeout_ms=567)
    with connect(db.dsn, settings) as conn:
        show = {
            name: conn.execute(f"SHOW {name}".encode()).fetchone()[0]  # type: ignore[index]
            for name in (
                "default_transaction_read_only",
                "statement_timeout",
                "lock_timeout",
                "application_name",
            )
        }
        assert show == {
            "default_transaction_read_only": "on",
            "statement_timeout": "1234ms",
            "lock_timeout": "567ms",
            "application_name": "opscope",
        }
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(5)")
        with db.connect() as other:
            names = other.execute(
                "SELECT application_name FROM pg_stat_activity WHERE datname = %s", (db.name,)
            ).fetchall()
        assert ("opscope",) in names
    with connect(db.dsn, settings, writable=True) as conn:
        conn.execute("INSERT INTO t VALUES (1)")


def test_connection_errors_are_one_line_and_redacted() -> None:
    with pytest.raises(TargetConnectionError) as info:
        connect("postgresql://u:topsecret@127.0.0.1:1/db", SessionSettings(connect_timeout_s=2))
    message = str(info.value)
    assert "\n" not in message and "topsecret" not in message
    assert message.startswith("cannot connect to 127.0.0.1:1/db: ")
    assert describe_dsn("host=h port=6 dbname=d password=x") == "h:6/d"


def test_a_pg_monitor_role_is_enough(db: SandboxDb) -> None:
    role = f"mon_{db.name}"
    db.execute(
        f"CREATE ROLE {role} LOGIN IN ROLE pg_monitor",
        "CREATE TABLE t (a int)",
        "CREATE INDEX t_a1 ON t (a)",
        "CREATE INDEX t_a2 ON t (a)",
    )
    with db.connect() as conn:
        conn.execute("SELECT pg_sleep(1.01)")
    try:
        dsn = db.cluster.dsn(db.name, user=role)
        report = analyze_database(postgres_config(state_dir=db.state_dir), dsn)
        assert report.errors == []
        checks = {(f.check, f.object) for f in report.findings}
        assert ("duplicate_index", "public.t_a2") in checks
        assert any(
            f.check == "slow_query" and f.evidence["query"] == "SELECT pg_sleep($1)"
            for f in report.findings
        )
    finally:
        db.execute(f"DROP OWNED BY {role}", f"DROP ROLE {role}")


def test_apply_keeps_the_report_when_one_analyze_fails_or_is_skipped(
    db: SandboxDb, lock_holder: Callable[..., Session]
) -> None:
    db.execute(
        "CREATE TABLE busy (id int) WITH (autovacuum_enabled = off)",
        "INSERT INTO busy SELECT generate_series(1, 5000)",
        "CREATE TABLE free (id int) WITH (autovacuum_enabled = off)",
        "INSERT INTO free SELECT generate_series(1, 5000)",
    )
    config = postgres_config(
        PostgresSettings(session=SessionSettings(lock_timeout_ms=200)), state_dir=db.state_dir
    )
    holder = lock_holder("busy", "SHARE UPDATE EXCLUSIVE")  # as a VACUUM would
    report = analyze_database(config, db.dsn, only=["stale_statistics"], apply=True)
    holder.release()
    assert report.summary[db.name]["applied"] == ['ANALYZE "public"."free";']
    [error] = report.errors
    assert error.check == "stale_statistics" and "busy" in error.message
    assert "lock timeout" in error.message
    assert {f.object for f in report.findings} == {"public.busy", "public.free"}

    # a role that does not own the tables: PostgreSQL skips the ANALYZE with a warning only
    role = f"mon_{db.name}"
    db.execute(f"CREATE ROLE {role} LOGIN IN ROLE pg_monitor")
    try:
        report = analyze_database(
            config, db.cluster.dsn(db.name, user=role), only=["stale_statistics"], apply=True
        )
        assert report.summary[db.name]["applied"] == []
        # "free" was analyzed above; "busy" is still stale, and the monitor cannot analyze it
        assert [e.message.split(";")[0] for e in report.errors] == ['ANALYZE "public"."busy"']
        assert "skipping" in report.errors[0].message
    finally:
        db.execute(f"DROP OWNED BY {role}", f"DROP ROLE {role}")


def test_an_unwritable_state_dir_keeps_the_findings(db: SandboxDb, tmp_path: Path) -> None:
    db.execute("CREATE TABLE big (id int)", "INSERT INTO big SELECT generate_series(1, 20000)")
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    config = postgres_config(
        PostgresSettings(thresholds=DbThresholds(large_table_bytes=1)), state_dir=blocker / "sub"
    )
    report = analyze_database(config, db.dsn, only=["large_table"])
    assert any(f.object == "public.big" for f in report.findings)
    [error] = report.errors
    assert error.check == "large_table" and "cannot keep table sizes" in error.message

"""Safety of the sessions opscope opens on a watched database."""

from __future__ import annotations

import psycopg
import pytest

from conftest import SandboxDb
from opscope.config import Config, SessionSettings
from opscope.db.analyze import analyze_database
from opscope.db.connection import TargetConnectionError, connect, describe_dsn


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
        report = analyze_database(dsn, Config(state_dir=db.state_dir))
        assert report.errors == []
        checks = {(f.check, f.object) for f in report.findings}
        assert ("duplicate_index", "public.t_a2") in checks
        assert any(
            f.check == "slow_query" and f.evidence["query"] == "SELECT pg_sleep($1)"
            for f in report.findings
        )
    finally:
        db.execute(f"DROP OWNED BY {role}", f"DROP ROLE {role}")

"""The link to a watched database: a server that stops answering, timeouts the DSN sets,
keepalives, and passwords that must never show in a message."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import SandboxDb
from opscope.db.analyze import target_name
from opscope.db.connection import (
    LinkLost,
    TargetConnectionError,
    connect,
    connection_params,
    describe_dsn,
    query_deadline_s,
    raise_if_lost,
)
from opscope.db.sandbox import (
    ODD_PASSWORD,
    ODD_PASSWORD_ROLE,
    PASSWORD,
    PASSWORD_ROLE,
    Sandbox,
)
from opscope.db.settings import SessionSettings
from stall_proxy import StallProxy
from test_cli import opscope


def shown_part(text: str, secret: str) -> str | None:
    """The first piece of `secret` (3 characters or more) that `text` shows, if any."""
    for i in range(len(secret) - 2):
        if secret[i : i + 3] in text:
            return secret[i : i + 3]
    return None


def _libpq_params(conn: psycopg.Connection[object]) -> dict[str, str]:
    return {
        opt.keyword.decode(): opt.val.decode() for opt in conn.pgconn.info if opt.val is not None
    }


# --- a server that stops answering -------------------------------------------------------


def _short_timeouts(tmp_path: Path, **extra: str) -> Path:
    cfg = tmp_path / "opscope.yaml"
    lines = [
        "postgresql:",
        "  session:",
        "    statement_timeout_ms: 1000",
        "    query_deadline_margin_s: 1",
    ]
    lines += [f"    {k}: {v}" for k, v in extra.items()]
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


@pytest.mark.parametrize("after_queries", [0, 3])
def test_analyze_ends_when_the_server_stops_answering_after_login(
    db: SandboxDb, tmp_path: Path, after_queries: int
) -> None:
    # 0: silent from the session's setup query on; 3: in the middle of the catalog reads
    cfg = _short_timeouts(tmp_path)
    with StallProxy(db.cluster.port, after_queries=after_queries) as proxy:
        # the subprocess timeout only guards the test run: before the deadline existed, this
        # never ended
        proc = opscope(
            "analyze",
            "db",
            "-c",
            str(cfg),
            proxy.dsn(db.name),
            env={"OPSCOPE_STATE_DIR": str(tmp_path)},
        )
        assert proxy.stalled == 1
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    [line] = proc.stderr.strip().splitlines()
    where = f"127.0.0.1:{proxy.port}/{db.name}"
    verb = "cannot connect to" if after_queries == 0 else "lost the connection to"
    assert line == (
        f"opscope: error: {verb} {where}: no answer from the server within 2 s "
        "(statement_timeout plus session.query_deadline_margin_s): connection closed"
    )


@pytest.mark.parametrize(
    ("command", "failed"),
    [
        (["explain", "{dsn}", "SELECT 1"], "EXPLAIN failed"),
        (["indexes", "advise", "{dsn}"], "lost the connection to"),
    ],
)
def test_explain_and_advise_end_too(
    db: SandboxDb, tmp_path: Path, command: list[str], failed: str
) -> None:
    # their statements go to the connection directly, not through the SQL runner
    cfg = _short_timeouts(tmp_path)
    with StallProxy(db.cluster.port, after_queries=2) as proxy:
        args = [a.format(dsn=proxy.dsn(db.name)) for a in command]
        proc = opscope(*args, "-c", str(cfg))
        assert proxy.stalled == 1
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("opscope: error: ") and "no answer from the server within 2 s" in line
    assert failed in line


def test_a_query_without_an_answer_closes_the_connection(db: SandboxDb) -> None:
    session = SessionSettings(statement_timeout_ms=300, query_deadline_margin_s=0.5)
    with StallProxy(db.cluster.port, after_queries=2) as proxy:
        dsn = proxy.dsn(db.name)
        conn = connect(dsn, session)
        try:
            assert conn.execute("SELECT 41 + 1").fetchone() == (42,)
            with pytest.raises(LinkLost):
                conn.execute("SELECT 1")
            assert conn.broken
            with pytest.raises(
                TargetConnectionError, match=r"^lost the connection to 127\.0\.0\.1:"
            ):
                raise_if_lost(conn, dsn)
        finally:
            conn.close()


def test_a_connection_the_server_ends_is_reported_as_lost(db: SandboxDb) -> None:
    conn = connect(db.dsn, SessionSettings())
    try:
        pid = conn.info.backend_pid
        db.execute(f"SELECT pg_terminate_backend({pid})")
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
        with pytest.raises(TargetConnectionError) as info:
            raise_if_lost(conn, db.dsn)
        message = str(info.value)
        assert message.startswith(f"lost the connection to 127.0.0.1:{db.cluster.port}/")
        assert "terminating connection" in message or "closed" in message, message
        assert "\n" not in message
    finally:
        conn.close()


def test_sessions_without_a_statement_timeout_have_no_query_deadline(db: SandboxDb) -> None:
    assert query_deadline_s(SessionSettings(statement_timeout_ms=0)) is None
    assert query_deadline_s(SessionSettings(statement_timeout_ms=2500)) == 12.5
    # the deadline is past the statement timeout: a query the server lets run is answered
    for timeout_ms in (0, 2000):
        session = SessionSettings(statement_timeout_ms=timeout_ms, query_deadline_margin_s=0.2)
        with connect(db.dsn, session) as conn:
            assert conn.execute("SELECT pg_sleep(0.6), 1").fetchone() == ("", 1)


# --- timeouts and keepalives -------------------------------------------------------------


def test_connect_timeout_in_the_dsn_wins_over_the_config(cluster: Sandbox, tmp_path: Path) -> None:
    # a server that accepts the TCP connection and never says a word (stalled mid-startup);
    # with the config's hour-long timeout winning, this would not end
    cfg = tmp_path / "opscope.yaml"
    cfg.write_text("postgresql:\n  session:\n    connect_timeout_s: 3600\n")
    with StallProxy(cluster.port, after_queries=None) as proxy:
        proc = opscope("analyze", "db", "-c", str(cfg), proxy.dsn("postgres", connect_timeout="2"))
        assert proxy.stalled == 1
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"opscope: error: cannot connect to 127.0.0.1:{proxy.port}/postgres: "
        "connection timeout expired"
    )


def test_keepalives_are_on_and_what_the_dsn_sets_wins(db: SandboxDb) -> None:
    session = SessionSettings(connect_timeout_s=7)
    added = connection_params({"connect_timeout": "3", "keepalives_idle": "77"}, session)
    assert "connect_timeout" not in added and "keepalives_idle" not in added
    assert added["application_name"] == "opscope"
    assert connection_params({}, session)["connect_timeout"] == "7"

    with connect(db.dsn, session) as conn:
        libpq = _libpq_params(conn)
    assert libpq["connect_timeout"] == "7"
    assert libpq["keepalives"] == "1"
    assert int(libpq["keepalives_idle"]) > 0 and int(libpq["tcp_user_timeout"]) > 0

    dsn = db.dsn + "?connect_timeout=3&keepalives_idle=77&tcp_user_timeout=5000"
    with connect(dsn, session) as conn:
        libpq = _libpq_params(conn)
    assert (libpq["connect_timeout"], libpq["keepalives_idle"]) == ("3", "77")
    assert libpq["tcp_user_timeout"] == "5000"
    assert libpq["application_name"] == "opscope"


# --- passwords in messages ---------------------------------------------------------------


def _analyze(dsn: str, tmp_path: Path, **env: str) -> tuple[int, str]:
    proc = opscope(
        "analyze",
        "db",
        dsn,
        "--check",
        "invalid_index",
        env={"OPSCOPE_STATE_DIR": str(tmp_path), **env},
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_passwords_full_of_dsn_syntax_never_show(cluster: Sandbox, tmp_path: Path) -> None:
    assert {"@", ":", "/", "#", "%", "'", '"', " "} <= set(ODD_PASSWORD)
    wrong = ODD_PASSWORD.replace("7", "8")
    host = f"127.0.0.1:{cluster.port}"

    def url(password: str, *, encode: bool) -> str:
        secret = quote(password, safe="") if encode else password
        return f"postgresql://{ODD_PASSWORD_ROLE}:{secret}@{host}/postgres"

    def key_value(password: str) -> str:
        quoted = password.replace("\\", "\\\\").replace("'", "\\'")
        return (
            f"host=127.0.0.1 port={cluster.port} dbname=postgres "
            f"user={ODD_PASSWORD_ROLE} password='{quoted}'"
        )

    for dsn in (url(ODD_PASSWORD, encode=True), key_value(ODD_PASSWORD)):
        code, out = _analyze(dsn, tmp_path)
        assert code == 0, out
        assert shown_part(out, ODD_PASSWORD) is None, out
    for dsn in (url(wrong, encode=True), key_value(wrong)):
        code, out = _analyze(dsn, tmp_path)
        assert code == 2
        [line] = out.strip().splitlines()
        assert f'password authentication failed for user "{ODD_PASSWORD_ROLE}"' in line
        assert shown_part(out, wrong) is None, out
    # as typed, unencoded: libpq would read what follows the first '@' (or a '/') as the host
    # name (or the database); the last two parse, and used to show up in "cannot connect to"
    for password in (ODD_PASSWORD, wrong, "Zq@7kJx#9vW", "Zq7/kJx@9vW"):
        code, out = _analyze(url(password, encode=False), tmp_path)
        assert code == 2
        [line] = out.strip().splitlines()
        assert "percent-encode '@' as %40" in line
        assert shown_part(out, password) is None, out


_URL_SYNTAX = "@:/#%?&=' \"XQZW"


@given(st.text(alphabet=_URL_SYNTAX, min_size=3, max_size=20))
def test_host_and_database_in_messages_never_hold_a_raw_password(password: str) -> None:
    # "XQZW" and the syntax characters never make 3 in a row in the host part below, so
    # whatever of the password these show is the password's
    dsn = f"postgresql://u:{password}@127.0.0.1:5/db"
    for shown in (describe_dsn(dsn), target_name(dsn)):
        assert shown_part(shown, password) is None, shown


def test_a_wrong_password_from_pgpass_keeps_the_servers_reason(
    cluster: Sandbox, tmp_path: Path
) -> None:
    pgpass = tmp_path / "pgpass"
    dsn = f"postgresql://{PASSWORD_ROLE}@127.0.0.1:{cluster.port}/postgres"
    pgpass.write_text(f"127.0.0.1:{cluster.port}:*:{PASSWORD_ROLE}:not-{PASSWORD}\n")
    pgpass.chmod(0o600)
    code, out = _analyze(dsn, tmp_path, PGPASSFILE=str(pgpass))
    assert code == 2
    assert out.strip() == (
        f"opscope: error: cannot connect to 127.0.0.1:{cluster.port}/postgres: password "
        f'authentication failed for user "{PASSWORD_ROLE}" (password retrieved from file '
        f'"{pgpass}")'
    )
    pgpass.write_text(f"127.0.0.1:{cluster.port}:*:{PASSWORD_ROLE}:{PASSWORD}\n")
    code, out = _analyze(dsn, tmp_path, PGPASSFILE=str(pgpass))
    assert code == 0, out

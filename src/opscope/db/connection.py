"""Safe sessions on a watched database, and the SQL runner every source goes through.

Every session opscope opens is read-only by default, carries short statement and lock
timeouts and says who it is (`application_name`), so pointing opscope at production is safe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Protocol

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from opscope.db.settings import SessionSettings
from opscope.redact import MASK, redact


class TargetConnectionError(Exception):
    """Connecting failed; the message is one line, with any password removed."""


def describe_dsn(dsn: str) -> str:
    """host:port/dbname, for messages (never the password)."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        return "an invalid connection string"
    host = info.get("host") or "localhost"
    port = info.get("port") or "5432"
    return f"{host}:{port}/{info.get('dbname') or info.get('user') or ''}"


def _connect_reason(exc: BaseException) -> str:
    """The cause in libpq's multi-line connection error, which it puts last."""
    text = str(exc).strip()
    # libpq prefixes "connection failed: connection to server at ... failed:"; keep the cause.
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    last = lines[-1] if lines else type(exc).__name__
    last = re.sub(r"^.*failed:\s*", "", last) if "failed:" in last else last
    last = re.sub(r"^(FATAL|ERROR):\s*", "", last)
    # a bare "connection failed" or libpq's hint hides the cause in an earlier line
    if (last.lower() in {"connection failed", ""} or last.startswith("Is the server")) and len(
        lines
    ) > 1:
        cause = re.sub(r"^.*failed:\s*", "", lines[-2])
        last = f"{cause} ({last})" if last.startswith("Is the server") else cause
    return redact(last)


def _password(dsn: str) -> str | None:
    try:
        value = psycopg.conninfo.conninfo_to_dict(dsn).get("password")
    except psycopg.Error:
        return None
    return str(value) if value else None


def redact_secret(text: str, dsn: str) -> str:
    """`text` without the password of `dsn`, wherever libpq or the server echoed it."""
    text = redact(text)
    password = _password(dsn)
    if password and len(password) >= 3:
        text = text.replace(password, MASK)
    return text


class ConnectionFactory(Protocol):
    """How a library function opens sessions: `connect`, or a test's own."""

    def __call__(
        self, dsn: str, session: SessionSettings, *, writable: bool = False
    ) -> psycopg.Connection[Any]: ...


def connect(
    dsn: str, session: SessionSettings, *, writable: bool = False
) -> psycopg.Connection[Any]:
    """Open an autocommit session with opscope's safety settings applied.

    Autocommit keeps one failing catalog query (say, a missing extension) from aborting the
    others; read-only comes from `default_transaction_read_only`, which covers every
    implicit transaction. `writable` is only for explicit `--apply` actions.
    """
    try:
        psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        # libpq quotes the offending token, which may be the password: never echo it
        raise TargetConnectionError(
            "invalid connection string (expected postgresql://user@host:port/dbname or "
            "key=value pairs)"
        ) from None
    try:
        conn = psycopg.connect(
            dsn,
            autocommit=True,
            connect_timeout=session.connect_timeout_s,
            application_name=session.application_name,
        )
    except psycopg.Error as exc:
        raise TargetConnectionError(
            redact_secret(f"cannot connect to {describe_dsn(dsn)}: {_connect_reason(exc)}", dsn)
        ) from None
    except Exception:  # odd DSNs surface as ProgrammingError or ValueError; never echo them
        raise TargetConnectionError("invalid connection string") from None
    settings = {
        "default_transaction_read_only": "off" if writable else "on",
        "statement_timeout": f"{session.statement_timeout_ms}ms",
        "lock_timeout": f"{session.lock_timeout_ms}ms",
        # the server must lex string literals as PostgreSQL's parser (pglast) does, so what
        # we checked is what it runs
        "standard_conforming_strings": "on",
    }
    # One round trip for all settings; set_config keeps values out of the SQL text.
    conn.execute(
        "SELECT " + ", ".join(["set_config(%s, %s, false)"] * len(settings)),
        [x for pair in settings.items() for x in pair],
    )
    return conn


@cache
def _sql_text(name: str) -> str:
    return resources.files("opscope.db").joinpath("sql", name).read_text(encoding="utf-8")


def load_sql(name: str, server_version_num: int) -> str:
    """The text of `name`.sql for this server: `name.pgNN.sql` wins for servers >= NN."""
    folder = resources.files("opscope.db").joinpath("sql")
    best = f"{name}.sql"
    best_version = 0
    for entry in folder.iterdir():
        m = re.fullmatch(rf"{re.escape(name)}\.pg(\d+)\.sql", entry.name)
        if m:
            major = int(m.group(1))
            if best_version < major and server_version_num >= major * 10000:
                best, best_version = entry.name, major
    return _sql_text(best)


@dataclass
class SqlRunner:
    """Runs opscope's named SQL files and counts what it sends, so benchmarks and tests can
    hold us to "a handful of set-based queries", never one per table."""

    conn: psycopg.Connection[Any]
    server_version_num: int = 0
    queries_sent: int = 0

    def fetch(self, name: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        # The files ship with the package and are trusted text, never built from input.
        return self.fetch_query(sql.SQL(load_sql(name, self.server_version_num)), params)

    def fetch_query(
        self, query: sql.SQL | sql.Composed, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        self.queries_sent += 1
        with self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else []

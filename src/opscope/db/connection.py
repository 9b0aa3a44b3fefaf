"""Safe sessions on a watched database, and the SQL runner every source goes through.

Every session opscope opens is read-only by default, carries short statement and lock
timeouts and says who it is (`application_name`), so pointing opscope at production is safe.
Its link is watched too: TCP keepalives and `tcp_user_timeout` end a dead one, and no query
waits for its answer much longer than the server's own `statement_timeout` would let it run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Protocol, TypeVar

import psycopg
from psycopg import sql
from psycopg.abc import PQGen
from psycopg.rows import TupleRow, dict_row

from opscope.db.settings import SessionSettings
from opscope.redact import MASK, redact

RV = TypeVar("RV")


class TargetConnectionError(Exception):
    """Connecting failed, or the connection was lost; the message is one line, with any
    password removed."""


class LinkLost(psycopg.OperationalError):
    """A query got no complete answer within the session's deadline; the connection was closed
    from our side."""


def _misread_url(dsn: str) -> str | None:
    """Why libpq would read parts of the password of this URL as host, port or database name.

    libpq ends the user-info of a URL at its first '@' or '/': a raw '@' in the password puts
    the rest of it in the host name, a raw '/' puts it in the database name, and any message
    naming those would show it. Strict on purpose: an '@' in a parameter value is refused
    too, when percent-encoding it is all it takes."""
    if not dsn.startswith(("postgresql://", "postgres://")):
        return None
    rest = dsn.split("://", 1)[1]
    if rest.count("@") > 1:
        return "it has more than one '@'"
    at = rest.find("@")
    if at >= 0 and "/" in rest[:at]:
        return "it has a '/' before its '@'"
    return None


def parse_dsn(dsn: str) -> dict[str, Any] | None:
    """The parameters of `dsn`, or None when it is invalid or libpq would misread it."""
    if _misread_url(dsn):
        return None
    try:
        return psycopg.conninfo.conninfo_to_dict(dsn)
    except Exception:  # psycopg.Error, and ValueError for odd DSNs; never echo them
        return None


def describe_dsn(dsn: str) -> str:
    """host:port/dbname, for messages (never the password)."""
    info = parse_dsn(dsn)
    if info is None:
        return "an invalid connection string"
    host = info.get("host") or "localhost"
    port = info.get("port") or "5432"
    return f"{host}:{port}/{info.get('dbname') or info.get('user') or ''}"


def _connect_reason(exc: BaseException) -> str:
    """The cause of a libpq failure, with libpq's hints after it in parentheses."""
    causes: list[str] = []
    hints: list[str] = []
    continued = False
    for raw in str(exc).strip().splitlines():
        line = raw.strip()
        if not line:
            continue
        if raw[:1].isspace() and (causes or hints):
            # libpq indents its hints ("Is the server running ...?"), over one or more lines
            if continued:
                hints[-1] += " " + line
            else:
                hints.append(line)
            continued = True
            continue
        continued = False
        # the reason a password was wrong ends up before this note, not after it
        (hints if line.startswith("password retrieved from file") else causes).append(line)
    # libpq prefixes "connection failed: connection to server at ... failed:"; keep the cause,
    # which a bare "connection failed" line leaves on the line before
    cause = ""
    for line in reversed(causes):
        cause = re.sub(r"^(FATAL|ERROR):\s*", "", re.sub(r"^.*failed:\s*", "", line))
        if cause and cause.lower() != "connection failed":
            break
    hints = [h for h in hints if not h.startswith("This probably means")]
    if not cause:
        cause = hints.pop(0) if hints else (causes[-1] if causes else type(exc).__name__)
    return redact(f"{cause} ({'; '.join(hints)})" if hints else cause)


def _password(dsn: str) -> str | None:
    value = (parse_dsn(dsn) or {}).get("password")
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


#: libpq parameters that end a dead link; a DSN that sets one keeps its own value. The probes
#: start after 10 s of silence and give up after 3 unanswered ones, 5 s apart; data the peer
#: has not acknowledged for 30 s (a query sent into a dead link) closes the connection.
_LINK_PARAMS = {
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "30000",
}


def connection_params(dsn_params: dict[str, Any], session: SessionSettings) -> dict[str, Any]:
    """What opscope adds to the parameters of a DSN: its name always, and the timeouts and
    keepalives the DSN does not set itself (the DSN's `connect_timeout` wins)."""
    defaults = {"connect_timeout": str(session.connect_timeout_s), **_LINK_PARAMS}
    params = {k: v for k, v in defaults.items() if k not in dsn_params}
    params["application_name"] = session.application_name
    return params


def query_deadline_s(session: SessionSettings) -> float | None:
    """How long a query may wait for its answer: the server ends it at `statement_timeout`,
    so an answer still missing `query_deadline_margin_s` later will not come. Sessions
    without a statement timeout (those of `--apply`: ANALYZE, CREATE INDEX CONCURRENTLY) have
    no deadline: only keepalives and `tcp_user_timeout` end their link, when it is dead."""
    if session.statement_timeout_ms <= 0:
        return None
    return session.statement_timeout_ms / 1000 + session.query_deadline_margin_s


class WatchedConnection(psycopg.Connection[TupleRow]):
    """A connection whose every wait for the server (each query, each commit) has a deadline.

    psycopg runs all of them through `wait()`, so this is the one place to put it. A wait
    past its deadline closes the connection from our side: the server, if it is alive, has
    already cancelled the statement at its `statement_timeout`, so there is nothing to cancel,
    and a cancel request would go through the same silent link."""

    deadline_s: float | None = None
    #: why the link was lost, once it was: our deadline, a reset, a keepalive timeout
    lost: str | None = None

    def wait(self, gen: PQGen[RV], interval: float = 0.1, timeout: float | None = None) -> RV:
        try:
            return super().wait(gen, interval, self.deadline_s if timeout is None else timeout)
        except psycopg.errors._WaitTimeout:
            if timeout is not None:  # the caller's own timeout (notifies()): its business
                raise
            self.lost = (
                f"no answer from the server within {self.deadline_s:g} s (statement_timeout "
                "plus session.query_deadline_margin_s): connection closed"
            )
            self.pgconn.finish()
            raise LinkLost(self.lost) from None
        except psycopg.OperationalError as exc:
            if self.broken and self.lost is None:
                self.lost = _connect_reason(exc)
            raise


def raise_if_lost(conn: psycopg.Connection[Any], dsn: str) -> None:
    """Raise TargetConnectionError when `conn` lost its link: what was read before is not a
    report, and every later query would fail the same way."""
    if conn.broken:
        reason = getattr(conn, "lost", None) or "the connection was closed unexpectedly"
        raise TargetConnectionError(
            redact_secret(f"lost the connection to {describe_dsn(dsn)}: {reason}", dsn)
        )


def connect(
    dsn: str, session: SessionSettings, *, writable: bool = False
) -> psycopg.Connection[Any]:
    """Open an autocommit session with opscope's safety settings applied.

    Autocommit keeps one failing catalog query (say, a missing extension) from aborting the
    others; read-only comes from `default_transaction_read_only`, which covers every
    implicit transaction. `writable` is only for explicit `--apply` actions.
    """
    misread = _misread_url(dsn)
    if misread:
        raise TargetConnectionError(
            f"invalid connection URL: {misread}; percent-encode '@' as %40 and '/' as %2F in "
            "the user name and the password (and '@' in parameter values)"
        )
    try:
        dsn_params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        # libpq quotes the offending token, which may be the password: never echo it
        raise TargetConnectionError(
            "invalid connection string (expected postgresql://user@host:port/dbname or "
            "key=value pairs)"
        ) from None
    try:
        conn = WatchedConnection.connect(
            dsn, autocommit=True, **connection_params(dsn_params, session)
        )
    except psycopg.Error as exc:
        raise TargetConnectionError(
            redact_secret(f"cannot connect to {describe_dsn(dsn)}: {_connect_reason(exc)}", dsn)
        ) from None
    except Exception:  # odd DSNs surface as ProgrammingError or ValueError; never echo them
        raise TargetConnectionError("invalid connection string") from None
    conn.deadline_s = query_deadline_s(session)
    settings = {
        "default_transaction_read_only": "off" if writable else "on",
        "statement_timeout": f"{session.statement_timeout_ms}ms",
        "lock_timeout": f"{session.lock_timeout_ms}ms",
        # the server must lex string literals as PostgreSQL's parser (pglast) does, so what
        # we checked is what it runs
        "standard_conforming_strings": "on",
    }
    # One round trip for all settings; set_config keeps values out of the SQL text.
    try:
        conn.execute(
            "SELECT /* opscope */ " + ", ".join(["set_config(%s, %s, false)"] * len(settings)),
            [x for pair in settings.items() for x in pair],
        )
    except psycopg.OperationalError as exc:
        conn.close()
        raise TargetConnectionError(
            redact_secret(f"cannot connect to {describe_dsn(dsn)}: {_connect_reason(exc)}", dsn)
        ) from None
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

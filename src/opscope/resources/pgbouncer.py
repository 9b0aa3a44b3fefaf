"""PgBouncer's admin console as typed records: SHOW POOLS (clients active and waiting, server
connections by state, the longest wait), SHOW STATS (transactions per second and their mean
time, the last stats_period) and SHOW DATABASES (each pool's size).

The console speaks only SHOW and a few commands, and refuses the startup options opscope's
PostgreSQL sessions set; opscope sends nothing but SHOW to it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from opscope.db.connection import describe_dsn, redact_secret


class BouncerError(Exception):
    """The console could not be read; one line, password removed."""


@dataclass(frozen=True)
class BouncerPool:
    bouncer: str
    database: str
    user: str
    pool_mode: str | None
    pool_size: int | None
    cl_active: int
    cl_waiting: int
    sv_active: int
    sv_idle: int
    sv_used: int
    maxwait_s: float
    #: transactions per second, mean transaction time (ms) and mean wait (ms) over the
    #: last stats_period, for the pool's database
    xact_per_s: float | None
    xact_ms: float | None
    wait_ms: float | None

    @property
    def name(self) -> str:
        return f"{self.bouncer}/{self.database}/{self.user}"

    @property
    def load(self) -> float | None:
        """Little's law: server connections busy on average."""
        if self.xact_per_s is None or self.xact_ms is None:
            return None
        return self.xact_per_s * self.xact_ms / 1000


Connect = Callable[[str], psycopg.Connection[Any]]


def _connect(dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, autocommit=True, connect_timeout=10)


def _show(conn: psycopg.Connection[Any], what: str) -> list[dict[str, Any]]:
    # the console takes no parameters and knows no transactions: one plain SHOW each
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            {"POOLS": b"SHOW POOLS", "STATS": b"SHOW STATS", "DATABASES": b"SHOW DATABASES"}[what]
        )
        return cur.fetchall()


def _num(row: dict[str, Any], key: str) -> float:
    value = row.get(key)
    return float(value) if value is not None else 0.0


def read_bouncer(name: str, admin_dsn: str, connect: Connect = _connect) -> list[BouncerPool]:
    """The pools of one PgBouncer (its own `pgbouncer` console pool left out)."""
    try:
        conn = connect(admin_dsn)
    except psycopg.Error as exc:
        raise BouncerError(
            redact_secret(
                f"cannot connect to PgBouncer {name} at {describe_dsn(admin_dsn)}: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc}",
                admin_dsn,
            )
        ) from None
    try:
        pools = _show(conn, "POOLS")
        stats = {r["database"]: r for r in _show(conn, "STATS")}
        databases = {r["name"]: r for r in _show(conn, "DATABASES")}
    except psycopg.Error as exc:
        raise BouncerError(
            redact_secret(f"PgBouncer {name}: {str(exc).strip().splitlines()[0]}", admin_dsn)
        ) from None
    finally:
        conn.close()
    out = []
    for row in pools:
        database = str(row["database"])
        if database == "pgbouncer":
            continue
        stat = stats.get(database, {})
        size = databases.get(database, {}).get("pool_size")
        out.append(
            BouncerPool(
                bouncer=name,
                database=database,
                user=str(row["user"]),
                pool_mode=row.get("pool_mode"),
                pool_size=int(size) if size is not None else None,
                cl_active=int(_num(row, "cl_active")),
                cl_waiting=int(_num(row, "cl_waiting")),
                sv_active=int(_num(row, "sv_active")),
                sv_idle=int(_num(row, "sv_idle")),
                sv_used=int(_num(row, "sv_used")),
                maxwait_s=_num(row, "maxwait") + _num(row, "maxwait_us") / 1e6,
                xact_per_s=_num(stat, "avg_xact_count") if stat else None,
                # SHOW STATS gives microseconds
                xact_ms=_num(stat, "avg_xact_time") / 1000 if stat else None,
                wait_ms=_num(stat, "avg_wait_time") / 1000 if stat else None,
            )
        )
    return out

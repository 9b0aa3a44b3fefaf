"""What the database behind a pool can take: usable slots less the connections others hold."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row

from opscope.config import Config
from opscope.db.connection import ConnectionFactory, TargetConnectionError, connect
from opscope.db.settings import databases, settings_for
from opscope.redact import redact


@dataclass(frozen=True)
class Capacity:
    database: str
    max_connections: int
    reserved: int
    connections: int
    by_application: dict[str, int]

    @property
    def usable(self) -> int:
        return self.max_connections - self.reserved

    def free_for(self, own: int) -> int:
        """Slots a pool could grow into: usable, less what everyone else holds now (`own`:
        the connections the pool itself holds among them)."""
        return self.usable - (self.connections - own)


def database_dsn(config: Config, database: str) -> tuple[str, str]:
    """(name to show, DSN) of a database given by name under `databases:` or as a DSN."""
    named = databases(config)
    if database in named:
        return database, named[database].dsn
    return redact(database), database


def read_capacity(config: Config, database: str, connect: ConnectionFactory = connect) -> Capacity:
    """Raises TargetConnectionError when the database cannot be reached."""
    shown, dsn = database_dsn(config, database)
    session = settings_for(config, database if database in databases(config) else None).session
    conn = connect(dsn, session)
    try:
        text = resources.files("opscope.resources").joinpath("sql", "capacity.sql").read_text()
        with conn.cursor(row_factory=dict_row) as cur:
            # trusted text shipped with the package, never built from input
            cur.execute(sql.SQL(text))
            row: dict[str, Any] | None = cur.fetchone()
    finally:
        conn.close()
    if row is None:
        raise TargetConnectionError(f"{shown}: no answer about its connections")
    return Capacity(
        database=shown,
        max_connections=int(row["max_connections"]),
        reserved=int(row["reserved"]),
        connections=int(row["connections"]),
        by_application={str(k): int(v) for k, v in (row["by_application"] or {}).items()},
    )

"""Database time and queries per request, from the drivers themselves.

- psycopg 3: `Connection.connect` (what `psycopg.connect` is), whose time is database time
  and whose count per request is kept, and `execute` and `executemany` of its cursor classes
  (client-side, raw, server-side, sync and async) are wrapped at the class level, once per
  process. That covers every connection however it was made: `psycopg.connect` in a
  handler, a psycopg_pool pool, SQLAlchemy's psycopg dialect. A server-side cursor's time is
  its DECLARE; the fetches that follow are not counted.
- SQLAlchemy engines on another driver (psycopg2, asyncpg through its sync adapter, pg8000,
  sqlite): the `before/after_cursor_execute` events of the Engine class. An engine on psycopg
  is left to the cursor hook, so nothing is counted twice.

A query is charged to the request whose record is current in its context (opscope.api.record);
outside a request the wrappers cost one context-variable read.
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable
from typing import Any

from opscope.api import pools
from opscope.api.record import CURRENT

_lock = threading.Lock()
_installed: set[str] = set()


def query_text(query: Any, cursor: Any) -> str:
    if isinstance(query, str):
        return query
    if isinstance(query, bytes):
        return query.decode("utf-8", "replace")
    as_string = getattr(query, "as_string", None)  # psycopg.sql.Composable
    if as_string is not None:
        try:
            return str(as_string(cursor))
        except Exception:  # a composable that cannot be rendered is still a query
            return repr(query)
    return str(query)


def _wrap_sync(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        record = CURRENT.get()
        if record is None or record.in_query:
            return method(self, query, *args, **kwargs)
        record.in_query = True
        timer = record.timer
        start = timer()
        try:
            return method(self, query, *args, **kwargs)
        finally:
            record.in_query = False
            record.add_query(query_text(query, self), timer() - start)

    execute.__opscope_wrapped__ = True  # type: ignore[attr-defined]
    return execute


def _wrap_async(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        record = CURRENT.get()
        if record is None or record.in_query:
            return await method(self, query, *args, **kwargs)
        record.in_query = True
        timer = record.timer
        start = timer()
        try:
            return await method(self, query, *args, **kwargs)
        finally:
            record.in_query = False
            record.add_query(query_text(query, self), timer() - start)

    execute.__opscope_wrapped__ = True  # type: ignore[attr-defined]
    return execute


def _patch(cls: type, name: str, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    # only a class's own method: subclasses that inherit it are covered through it
    method = cls.__dict__.get(name)
    if method is not None and not getattr(method, "__opscope_wrapped__", False):
        setattr(cls, name, wrap(method))


def _wrap_connect(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def connect(cls: Any, *args: Any, **kwargs: Any) -> Any:
        record = CURRENT.get()
        if record is None:
            return func(cls, *args, **kwargs)
        timer = record.timer
        start = timer()
        try:
            return func(cls, *args, **kwargs)
        finally:
            record.db_time += timer() - start
            record.connects += 1

    connect.__opscope_wrapped__ = True  # type: ignore[attr-defined]
    return connect


def _wrap_connect_async(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    async def connect(cls: Any, *args: Any, **kwargs: Any) -> Any:
        record = CURRENT.get()
        if record is None:
            return await func(cls, *args, **kwargs)
        timer = record.timer
        start = timer()
        try:
            return await func(cls, *args, **kwargs)
        finally:
            record.db_time += timer() - start
            record.connects += 1

    connect.__opscope_wrapped__ = True  # type: ignore[attr-defined]
    return connect


def _patch_connect(cls: type, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    method = cls.__dict__.get("connect")
    if isinstance(method, classmethod) and not getattr(method.__func__, "__opscope_wrapped__", 0):
        setattr(cls, "connect", classmethod(wrap(method.__func__)))  # noqa: B010


def install_psycopg() -> None:
    import psycopg

    # opening a connection in a request is database time too (TCP, TLS, authentication);
    # psycopg.connect is Connection.connect, bound when psycopg was imported
    _patch_connect(psycopg.Connection, _wrap_connect)
    _patch_connect(psycopg.AsyncConnection, _wrap_connect_async)
    psycopg.connect = psycopg.Connection.connect

    for cls in (psycopg.Cursor, psycopg.ServerCursor):
        _patch(cls, "execute", _wrap_sync)
        _patch(cls, "executemany", _wrap_sync)
    for acls in (psycopg.AsyncCursor, psycopg.AsyncServerCursor):
        _patch(acls, "execute", _wrap_async)
        _patch(acls, "executemany", _wrap_async)


_PSYCOPG_DRIVERS = frozenset({"psycopg", "psycopg_async"})
_STARTED = "_opscope_started"


def _before(conn: Any, cursor: Any, statement: Any, *args: Any) -> None:
    record = CURRENT.get()
    if record is None or record.in_query:
        return
    if conn.dialect.driver in _PSYCOPG_DRIVERS:
        return  # the cursor hook counts it
    conn.info[_STARTED] = record.timer()


def _after(conn: Any, cursor: Any, statement: Any, *args: Any) -> None:
    record = CURRENT.get()
    started = conn.info.pop(_STARTED, None)
    if record is None or started is None:
        return
    record.add_query(query_text(statement, cursor), record.timer() - started)


def install_sqlalchemy() -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    event.listen(Engine, "before_cursor_execute", _before)
    event.listen(Engine, "after_cursor_execute", _after)


def install() -> None:
    """Hook the drivers this process has, once. SQLAlchemy is hooked only once imported (the
    middleware calls this again at its first request, when the app has imported it)."""
    with _lock:
        if "psycopg" not in _installed:
            install_psycopg()
            _installed.add("psycopg")
        if "sqlalchemy" not in _installed and "sqlalchemy" in sys.modules:
            install_sqlalchemy()
            _installed.add("sqlalchemy")
    # the connection pools, for their figures on /metrics
    pools.install(sys.modules)

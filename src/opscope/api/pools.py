"""Connection pools of the process, found as they are used, and their figures for /metrics:
size, connections in use and idle, requests waiting, and the counters Little's law needs
(checkouts, those that waited, time waited, time connections were held, timeouts).

- psycopg_pool (`ConnectionPool`, `AsyncConnectionPool`, and the null pools): the pool keeps
  its own counters (`get_stats()`); a pool is found at its first `getconn`, whenever it was
  made.
- SQLAlchemy (`QueuePool` and every other `Pool`): `Pool.connect` is timed at the class level
  (time to get a connection, callers inside it, `TimeoutError`s), and the `checkout` and
  `checkin` events time how long each connection is held.

Labels are bounded: a pool is named by its own name (psycopg_pool's `name`, SQLAlchemy's
`pool_logging_name`) or `sqlalchemy-N` in order of discovery; past `MAX_POOLS` names, the
rest share `<other>`.
"""

from __future__ import annotations

import functools
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

MAX_POOLS = 20
OTHER_POOL = "<other>"

_lock = threading.Lock()
_psycopg: weakref.WeakSet[Any] = weakref.WeakSet()
_sqlalchemy: weakref.WeakKeyDictionary[Any, SqlAlchemyStats] = weakref.WeakKeyDictionary()
_installed: set[str] = set()
#: where a checked-out connection's record keeps when it was checked out
_HELD = "_opscope_checked_out_at"


class SqlAlchemyStats:
    """What opscope counts for one SQLAlchemy pool (it keeps no counters of its own)."""

    __slots__ = ("name", "queued", "requests", "timeouts", "use_s", "wait_s", "waiting")

    def __init__(self, name: str) -> None:
        self.name = name
        self.requests = 0
        self.queued = 0
        self.waiting = 0
        self.timeouts = 0
        self.wait_s = 0.0
        self.use_s = 0.0

    def checkout(self, dbapi_conn: Any, record: Any, proxy: Any) -> None:
        record.info[_HELD] = time.perf_counter()

    def checkin(self, dbapi_conn: Any, record: Any) -> None:
        started = record.info.pop(_HELD, None) if record is not None else None
        if started is not None:
            held = time.perf_counter() - started
            with _lock:
                self.use_s += held


def _wrap_getconn(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def getconn(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self not in _psycopg:
            _psycopg.add(self)
        return method(self, *args, **kwargs)

    getconn.__opscope_wrapped__ = True  # type: ignore[attr-defined]
    return getconn


def _wrap_getconn_async(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def getconn(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self not in _psycopg:
            _psycopg.add(self)
        return await method(self, *args, **kwargs)

    getconn.__opscope_wrapped__ = True  # type: ignore[attr-defined]
    return getconn


def install_psycopg_pool() -> None:
    import psycopg_pool

    for cls in (psycopg_pool.ConnectionPool, psycopg_pool.NullConnectionPool):
        method = cls.__dict__.get("getconn")
        if method is not None and not getattr(method, "__opscope_wrapped__", False):
            cls.getconn = _wrap_getconn(method)  # type: ignore[method-assign]
    for acls in (psycopg_pool.AsyncConnectionPool, psycopg_pool.AsyncNullConnectionPool):
        method = acls.__dict__.get("getconn")
        if method is not None and not getattr(method, "__opscope_wrapped__", False):
            acls.getconn = _wrap_getconn_async(method)  # type: ignore[method-assign]


def _sqlalchemy_stats(pool: Any) -> SqlAlchemyStats:
    stats = _sqlalchemy.get(pool)
    if stats is None:
        from sqlalchemy import event

        with _lock:
            stats = _sqlalchemy.get(pool)
            if stats is None:
                name = getattr(pool, "logging_name", None) or f"sqlalchemy-{len(_sqlalchemy) + 1}"
                stats = _sqlalchemy[pool] = SqlAlchemyStats(str(name))
                # this pool's own events: how long each of its connections is held
                event.listen(pool, "checkout", stats.checkout)
                event.listen(pool, "checkin", stats.checkin)
    return stats


def _full(pool: Any) -> bool:
    """A QueuePool with every connection checked out and no overflow left: this caller
    waits."""
    try:
        size, overflow, limit = pool.size(), pool.overflow(), pool._max_overflow
        return bool(limit >= 0 and pool.checkedout() >= size + limit and overflow >= limit)
    except (AttributeError, TypeError):
        return False


def _wrap_pool_connect(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def connect(self: Any, *args: Any, **kwargs: Any) -> Any:
        stats = _sqlalchemy_stats(self)
        queued = _full(self)
        start = time.perf_counter()
        # += on an int attribute is not atomic across threads; the lock costs a few
        # hundred nanoseconds per checkout
        with _lock:
            stats.requests += 1
            if queued:
                stats.queued += 1
                stats.waiting += 1
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            if type(exc).__name__ == "TimeoutError" and "sqlalchemy" in type(exc).__module__:
                with _lock:
                    stats.timeouts += 1
            raise
        finally:
            waited = time.perf_counter() - start
            if queued:
                with _lock:
                    stats.waiting -= 1
                    stats.wait_s += waited

    connect.__opscope_wrapped__ = True  # type: ignore[attr-defined]
    return connect


def install_sqlalchemy_pool() -> None:
    from sqlalchemy.pool import Pool

    method = Pool.__dict__.get("connect")
    if method is not None and not getattr(method, "__opscope_wrapped__", False):
        Pool.connect = _wrap_pool_connect(method)  # type: ignore[method-assign]


def install(modules: Any) -> None:
    """Hook the pool libraries this process has imported, once each (`modules`:
    sys.modules)."""
    with _lock:
        if "psycopg_pool" not in _installed and "psycopg_pool" in modules:
            install_psycopg_pool()
            _installed.add("psycopg_pool")
        if "sqlalchemy" not in _installed and "sqlalchemy" in modules:
            install_sqlalchemy_pool()
            _installed.add("sqlalchemy")


def _psycopg_figures(pool: Any) -> dict[str, Any]:
    stats = pool.get_stats()
    size = int(stats.get("pool_size", 0))
    available = int(stats.get("pool_available", 0))
    return {
        "type": "psycopg_pool",
        "max": int(stats.get("pool_max", 0)),
        "used": max(0, size - available),
        "idle": available,
        "pending": int(stats.get("requests_waiting", 0)),
        "requests": int(stats.get("requests_num", 0)),
        "queued": int(stats.get("requests_queued", 0)),
        "wait_s": stats.get("requests_wait_ms", 0) / 1000,
        "use_s": stats.get("usage_ms", 0) / 1000,
        "timeouts": int(stats.get("requests_errors", 0)),
    }


def _sqlalchemy_figures(pool: Any, stats: SqlAlchemyStats) -> dict[str, Any]:
    def call(name: str) -> int | None:
        method = getattr(pool, name, None)
        try:
            return int(method()) if callable(method) else None
        except (TypeError, ValueError):
            return None

    used = call("checkedout") or 0
    idle = call("checkedin") or 0
    size = call("size")
    limit = getattr(pool, "_max_overflow", None)
    maximum = size + limit if isinstance(limit, int) and limit >= 0 and size is not None else 0
    return {
        "type": "sqlalchemy",
        "max": maximum,
        "used": used,
        "idle": idle,
        "pending": max(0, stats.waiting),
        "requests": stats.requests,
        "queued": stats.queued,
        "wait_s": stats.wait_s,
        "use_s": stats.use_s,
        "timeouts": stats.timeouts,
    }


def pool_figures() -> dict[str, dict[str, Any]]:
    """The process's pools by name, their figures summed when two share a name."""
    found: list[tuple[str, dict[str, Any]]] = []
    for pool in list(_psycopg):
        try:
            found.append((str(getattr(pool, "name", "pool")), _psycopg_figures(pool)))
        except Exception:  # a closed or half-made pool has nothing to say
            continue
    for pool, stats in list(_sqlalchemy.items()):
        found.append((stats.name, _sqlalchemy_figures(pool, stats)))
    out: dict[str, dict[str, Any]] = {}
    for name, figures in found:
        if name not in out and len(out) >= MAX_POOLS:
            name = OTHER_POOL
        mine = out.get(name)
        if mine is None:
            out[name] = {**figures, "processes": 1}
        else:
            add_figures(mine, figures)
    return out


#: figures that add up across pools and processes (the rest: the pool type)
SUMMED = ("max", "used", "idle", "pending", "requests", "queued", "wait_s", "use_s", "timeouts")


def add_figures(into: dict[str, Any], other: dict[str, Any]) -> None:
    for key in SUMMED:
        into[key] = into.get(key, 0) + other.get(key, 0)
    into["processes"] = into.get("processes", 1) + other.get("processes", 1)

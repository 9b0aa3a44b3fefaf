"""What one request did, while it runs: the record the middleware opens, and that the
database and serialization hooks add to.

The record travels in a context variable: a query run in a thread of the thread pool
(FastAPI's sync endpoints, anyio's `to_thread`) sees the context copied from the request's,
and so the same record. A thread a handler starts itself without copying the context
(`threading.Thread`, a bare `ThreadPoolExecutor.submit`) has none, and its queries are not
charged to any request."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from opscope.api.types import Timer


class RequestRecord:
    """Mutable on purpose and with slots: it is made once per request on the hot path."""

    __slots__ = (
        "body_digest",
        "connects",
        "db_count",
        "db_time",
        "error",
        "in_query",
        "in_serialization",
        "private",
        "queries",
        "root_path",
        "route",
        "scope",
        "serialization_time",
        "serializing",
        "start",
        "status",
        "timer",
        "vary",
    )

    def __init__(self, scope: Any, start: float, timer: Timer, root_path: str = "") -> None:
        #: the ASGI scope or WSGI environ: the route is read from it once routing is done
        self.scope = scope
        #: the ASGI root_path the server gave, before any mount added to it
        self.root_path = root_path
        self.start = start
        self.timer = timer
        self.status = 0
        #: the route template, once known (WSGI sets it when the response starts)
        self.route: str | None = None
        #: the type name of an exception that escaped the handler
        self.error: str | None = None
        self.db_time = 0.0
        self.db_count = 0
        #: connections the request opened itself (their time is in db_time)
        self.connects = 0
        #: (statement text, seconds) of each query, made on the first query
        self.queries: list[tuple[str, float]] | None = None
        self.serialization_time = 0.0
        #: when FastAPI's serialize_response began, until the response it renders is made
        self.serializing = 0.0
        #: a query or serialization is being timed: a nested call (a driver's execute that
        #: calls another, a Response that builds another) is not counted twice
        self.in_query = False
        self.in_serialization = False
        #: the request carried Authorization or Cookie, or the response sets a cookie
        self.private = False
        #: CRC-32 of the response body as it streamed (GET and HEAD only), else None
        self.body_digest: int | None = None
        #: the response's Vary header, for the key of a repeated request
        self.vary: bytes | None = None

    def add_query(self, text: str, seconds: float) -> None:
        self.db_time += seconds
        self.db_count += 1
        if self.queries is None:
            self.queries = [(text, seconds)]
        else:
            self.queries.append((text, seconds))


#: the request being served in this context, if any
CURRENT: ContextVar[RequestRecord | None] = ContextVar("opscope_api_request", default=None)

"""`Instrument`: pure-ASGI middleware that records, per route template, the requests by
method and status code, their latency, the requests in flight and the exceptions that
escaped, the database time and queries of each request with its N+1 statements, the time
spent serializing, and for GET and HEAD a digest of the body as it streams. It serves
/metrics itself unless the app has its own route there.

    app.add_middleware(Instrument)

Like Starlette's own middleware it wraps `send` and keeps its state in the call: the body
goes through untouched, chunk by chunk, and is never buffered.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Awaitable, Hashable
from typing import Any

from opscope.api import dbhooks, serialization
from opscope.api.cache.rules import CREDENTIALS
from opscope.api.exposition import metrics_text, register_default
from opscope.api.record import CURRENT, RequestRecord
from opscope.api.recorder import Recorder, default_recorder
from opscope.api.routes import (
    CACHED_ROUTE,
    METHODS,
    OTHER_METHOD,
    PLAIN_TEMPLATES,
    starlette_route,
)
from opscope.api.types import ASGIApp, Message, Receive, Scope, Send, Timer

_CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
_CACHEABLE = ("GET", "HEAD")


def _route_of(record: RequestRecord) -> str | None:
    """For a request in flight: its route once the router has matched one."""
    scope = record.scope
    if scope.get("route") is None:
        cached: str | None = scope.get(CACHED_ROUTE)
        return cached
    return starlette_route(scope, record.root_path)


def _response_key(scope: Scope, vary: bytes | None) -> Hashable:
    """What identifies a GET for the body digest: path, sorted query, and the values of the
    request headers the response varies on."""
    query: bytes = scope.get("query_string", b"")
    if b"&" in query:
        query = b"&".join(sorted(query.split(b"&")))
    if not vary:
        return (scope["path"], query)
    names = {n.strip().lower() for n in vary.split(b",")}
    values = tuple(sorted((k, v) for k, v in scope.get("headers", ()) if k in names))
    return (scope["path"], query, values)


#: the request headers that make an answer one user's (the cache's own list, as bytes)
_PRIVATE = frozenset(name.encode() for name in CREDENTIALS)


#: what Recorder.active holds for a request of each method, made once (Recorder.begin)
_BEGUN = {method: (method, _route_of) for method in (*METHODS.values(), OTHER_METHOD)}


class _Request(RequestRecord):
    """An ASGI request's record, with the server's `send` and the two wrappers of it the
    middleware hands the app: a bound method costs less per request than a closure.

    The wrapper is chosen once per request, so that neither asks per message whether the
    request is a GET: only GET and HEAD answers are digested and looked at for cookies.
    They are plain methods that return the awaitable of the server's send, not coroutines
    of their own: that saves a coroutine per message (0.1 to 0.15 µs each)."""

    __slots__ = ("send",)
    send: Send

    def send_plain(self, message: Message) -> Awaitable[None]:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        return self.send(message)

    def send_cacheable(self, message: Message) -> Awaitable[None]:
        if message["type"] == "http.response.body":
            body = message.get("body")
            if body:
                self.body_digest = zlib.crc32(body, self.body_digest or 0)
        else:  # http.response.start (or an extension's message, which has no status)
            status = message.get("status")
            if status is not None:
                self.status = status
                for name, value in message.get("headers", ()):
                    if name == b"set-cookie":
                        self.private = True
                    elif name == b"vary":
                        self.vary = value
        return self.send(message)


class Instrument:
    """ASGI middleware; every argument is optional.

    `metrics_path`: where /metrics is served (None: nowhere; an app's own route there wins).
    `n_plus_one`: a statement run this many times in one request is an N+1.
    `recorder`: where figures go (default: the process's, shared by every app in it).
    `timer`: the clock durations are read from (monotonic seconds).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics_path: str | None = "/metrics",
        n_plus_one: int = 5,
        recorder: Recorder | None = None,
        timer: Timer = time.perf_counter,
    ) -> None:
        self.app = app
        self.metrics_path = metrics_path
        self.n_plus_one = n_plus_one
        self.default = recorder is None
        self.recorder = recorder or default_recorder()
        self.timer = timer
        #: None until the first request for metrics_path tells whether the app has a route
        self.serve_metrics: bool | None = None
        self.hooked = False
        dbhooks.install()
        serialization.install_asgi()
        if self.default and self.recorder.multiprocess_dir is None:
            register_default(self.recorder)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self.hooked:
            # the app has imported what it uses by its first request (SQLAlchemy, FastAPI)
            self.hooked = True
            dbhooks.install()
            serialization.install_asgi()
        if scope["path"] == self.metrics_path and self._serves_metrics(scope):
            await self._metrics(send)
            return
        timer = self.timer
        root_path = scope.get("root_path", "")
        record = _Request(scope, timer(), timer, root_path)
        record.send = send
        method = METHODS.get(scope["method"], OTHER_METHOD)
        recorder = self.recorder
        recorder.active[record] = _BEGUN[method]  # Recorder.begin, inlined
        cacheable = method in _CACHEABLE
        if cacheable:
            record.body_digest = 0
            wrapped = record.send_cacheable
        else:
            wrapped = record.send_plain

        token = CURRENT.set(record)
        try:
            await self.app(scope, receive, wrapped)
        except BaseException as exc:
            record.error = type(exc).__name__
            if not record.status:
                record.status = 500  # what the server answers for it
            raise
        finally:
            end = timer()
            CURRENT.reset(token)
            # starlette_route's common case, inlined: a route of the app itself (not below a
            # mount, whose match grows root_path), whose template is known
            route = scope.get("route")
            template = None
            if route is not None and len(scope.get("root_path", "")) == len(root_path):
                known = PLAIN_TEMPLATES.get(id(route))
                if known is not None and known[0] is route:
                    template = known[1]
            if template is None:
                template = starlette_route(scope, root_path)
            key = None
            if cacheable:
                private = record.private
                if not private:
                    # the request carried credentials (a plain loop: any() over a generator
                    # costs a frame per request)
                    for name, _ in scope.get("headers", ()):
                        if name in _PRIVATE:
                            private = record.private = True
                            break
                # an answer for one user says nothing about what others would get
                if not private and 200 <= record.status < 300:
                    query: bytes = scope.get("query_string", b"")
                    if record.vary or b"&" in query:
                        key = _response_key(scope, record.vary)
                    else:
                        key = (scope["path"], query)  # _response_key's common case
            recorder.finish(record, template, method, end - record.start, self.n_plus_one, key, end)

    def _serves_metrics(self, scope: Scope) -> bool:
        if self.serve_metrics is None:
            self.serve_metrics = not _app_has_route(scope.get("app"), scope["path"])
        return self.serve_metrics

    async def _metrics(self, send: Send) -> None:
        body = metrics_text(self.recorder, include_default=self.default)
        headers = [(b"content-type", _CONTENT_TYPE), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _app_has_route(app: Any, path: str) -> bool:
    """A Starlette/FastAPI app declares a route (or a mount) at `path` itself."""
    routes: Any = getattr(app, "routes", None) or getattr(
        getattr(app, "router", None), "routes", None
    )
    return any(getattr(r, "path", None) in (path, path.rstrip("/")) for r in routes or ())

"""`InstrumentWSGI`: the same recording as `Instrument`, for WSGI apps (Flask, and any WSGI
app given a `route` function).

    app.wsgi_app = InstrumentWSGI(app.wsgi_app)     # or InstrumentWSGI(app)

A Flask app is recognised from the app or its bound `wsgi_app`: its route templates come
from the request's url_rule, `jsonify` and returned dicts are timed as serialization, and the
type of an exception its error handling caught is recorded. The body is passed through
chunk by chunk; the request ends when the server closes the body iterable, as WSGI says.
"""

from __future__ import annotations

import sys
import time
import zlib
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any

from opscope.api import dbhooks, serialization
from opscope.api.exposition import metrics_text, register_default
from opscope.api.record import CURRENT, RequestRecord
from opscope.api.recorder import Recorder, default_recorder
from opscope.api.routes import CACHED_ROUTE, METHODS, OTHER_METHOD, UNMATCHED, flask_route
from opscope.api.types import Environ, ExcInfo, StartResponse, Timer, WSGIApp

_CACHEABLE = ("GET", "HEAD")
_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: the route of a request from its environ (None: not known yet)
RouteOf = Callable[[Environ], str | None]


def _flask_app(app: Any) -> Any:
    """The Flask app behind `app` (the app itself or its bound wsgi_app, possibly wrapped in
    middleware that keeps what it wraps as `.app`, as ResponseCacheWSGI does), else None."""
    for _ in range(8):
        for candidate in (app, getattr(app, "__self__", None)):
            if (
                candidate is not None
                and hasattr(candidate, "url_map")
                and hasattr(candidate, "json")
            ):
                return candidate
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


def _response_key(environ: Environ, vary: bytes | None) -> Hashable:
    query: str = environ.get("QUERY_STRING", "")
    if "&" in query:
        query = "&".join(sorted(query.split("&")))
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    if not vary:
        return (path, query)
    names = {
        "HTTP_" + n.strip().upper().replace("-", "_") for n in vary.decode("latin-1").split(",")
    }
    return (path, query, tuple(sorted((k, environ[k]) for k in names if k in environ)))


class InstrumentWSGI:
    """WSGI middleware; the arguments are those of `Instrument`, and `route`, for apps that
    are not Flask: a function from the environ to the route template (None: unmatched)."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        metrics_path: str | None = "/metrics",
        n_plus_one: int = 5,
        recorder: Recorder | None = None,
        timer: Timer = time.perf_counter,
        route: RouteOf | None = None,
    ) -> None:
        self.app = app
        self.metrics_path = metrics_path
        self.n_plus_one = n_plus_one
        self.default = recorder is None
        self.recorder = recorder or default_recorder()
        self.timer = timer
        self.route_of: RouteOf = route or flask_route
        self.flask = _flask_app(app)
        self.serve_metrics: bool | None = None
        self.hooked = False
        dbhooks.install()
        if self.flask is not None:
            serialization.install_flask(self.flask)
            self._hook_errors(self.flask)
        if self.default and self.recorder.multiprocess_dir is None:
            register_default(self.recorder)

    @staticmethod
    def _hook_errors(flask: Any) -> None:
        handle = flask.handle_exception
        if getattr(handle, "__opscope_wrapped__", False):
            return

        def handle_exception(e: Exception) -> Any:
            record = CURRENT.get()
            if record is not None:
                record.error = type(e).__name__
            return handle(e)

        handle_exception.__opscope_wrapped__ = True  # type: ignore[attr-defined]
        flask.handle_exception = handle_exception

    def _record_route(self, record: RequestRecord) -> str | None:
        return self.route_of(record.scope)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if not self.hooked:
            self.hooked = True
            dbhooks.install()
        path = environ.get("PATH_INFO", "")
        if path == self.metrics_path and self._serves_metrics(path):
            metrics = metrics_text(self.recorder, include_default=self.default)
            start_response(
                "200 OK", [("Content-Type", _CONTENT_TYPE), ("Content-Length", str(len(metrics)))]
            )
            return [metrics]
        timer = self.timer
        record = RequestRecord(environ, timer(), timer)
        method = METHODS.get(environ.get("REQUEST_METHOD", ""), OTHER_METHOD)
        self.recorder.begin(record, method, self._record_route)
        cacheable = method in _CACHEABLE
        if cacheable:
            record.body_digest = 0
        route_of = self.route_of

        def start(
            status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
        ) -> Any:
            record.status = int(status[:3])
            # the framework's request is still there while the response starts
            # (an answer from the response cache never reached the app: its rule says)
            record.route = route_of(environ) or environ.get(CACHED_ROUTE)
            if cacheable:
                for name, value in headers:
                    low = name.lower()
                    if low == "set-cookie":
                        record.private = True
                    elif low == "vary":
                        record.vary = value.encode("latin-1")
            if exc_info is not None:
                return start_response(status, headers, exc_info)
            return start_response(status, headers)

        token = CURRENT.set(record)
        try:
            body = self.app(environ, start)
        except BaseException as exc:
            record.error = type(exc).__name__
            if not record.status:
                record.status = 500
            CURRENT.reset(token)
            self._finish(record, method, cacheable)
            raise
        CURRENT.reset(token)
        return _Body(body, self, record, method, cacheable)

    def _finish(self, record: RequestRecord, method: str, cacheable: bool) -> None:
        end = self.timer()
        environ = record.scope
        key = None
        if cacheable:
            if not record.private and ("HTTP_AUTHORIZATION" in environ or "HTTP_COOKIE" in environ):
                record.private = True
            if 200 <= record.status < 300 and not record.private:
                key = _response_key(environ, record.vary)
        self.recorder.finish(
            record,
            record.route or UNMATCHED,
            method,
            end - record.start,
            n_plus_one=self.n_plus_one,
            response_key=key,
            now=end,
        )

    def _serves_metrics(self, path: str) -> bool:
        if self.serve_metrics is None:
            rules = getattr(getattr(self.flask, "url_map", None), "iter_rules", None)
            own = rules is not None and any(r.rule in (path, path.rstrip("/")) for r in rules())
            self.serve_metrics = not own
        return self.serve_metrics


class _Body:
    """The app's body iterable, passed through chunk by chunk (hashed for GET and HEAD);
    the request is recorded when the server closes it."""

    def __init__(
        self,
        body: Iterable[bytes],
        middleware: InstrumentWSGI,
        record: RequestRecord,
        method: str,
        cacheable: bool,
    ) -> None:
        self.body = body
        self.middleware = middleware
        self.record = record
        self.method = method
        self.cacheable = cacheable
        self.done = False

    def __iter__(self) -> Iterator[bytes]:
        record = self.record
        try:
            for chunk in self.body:
                if self.cacheable and chunk:
                    record.body_digest = zlib.crc32(chunk, record.body_digest or 0)
                yield chunk
        except BaseException:
            record.error = record.error or sys.exc_info()[0].__name__  # type: ignore[union-attr]
            raise

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            if not self.done:
                self.done = True
                self.middleware._finish(self.record, self.method, self.cacheable)

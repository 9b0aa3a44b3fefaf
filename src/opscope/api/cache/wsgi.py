"""`ResponseCacheWSGI`: the same cache for WSGI apps (Flask, or any WSGI app), with the sync
Redis client and threads where the ASGI middleware has asyncio: concurrent misses of one key
in a process wait on one `threading.Event`, a stale answer is refreshed in a thread.

    app.wsgi_app = ResponseCacheWSGI(app.wsgi_app, rules={"/products/<int:product_id>": 60})
    app.wsgi_app = InstrumentWSGI(app.wsgi_app)      # outermost: it sees hits too
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opscope.api.cache import serve
from opscope.api.cache.entry import Entry, Headers, make_entry, verdict
from opscope.api.cache.memory import MemoryCache
from opscope.api.cache.rules import (
    CREDENTIALS,
    CacheRequest,
    CacheRule,
    CompiledRule,
    RuleSet,
    entry_key,
    same_route,
    sorted_query,
)
from opscope.api.cache.stats import BYPASS, ERROR, HIT, MISS, STALE, CacheStats
from opscope.api.cache.store import Backend, BackendUnavailable, Lock
from opscope.api.routes import CACHED_ROUTE, UNMATCHED, flask_route
from opscope.api.types import Environ, ExcInfo, StartResponse, WSGIApp

#: the credential headers as the WSGI environ names them
_CREDENTIALS = tuple((name, f"HTTP_{name.upper()}") for name in CREDENTIALS)

log = logging.getLogger("opscope.api.cache")

_ABSENT = b"\xff"


class _Flight:
    __slots__ = ("done", "entry")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.entry: Entry | None = None

    def finish(self, entry: Entry | None) -> None:
        if not self.done.is_set():
            self.entry = entry
            self.done.set()


def _headers_out(headers: Headers) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]


def _headers_in(headers: Iterable[tuple[str, str]]) -> Headers:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]


class ResponseCacheWSGI:
    """WSGI middleware; the arguments are ResponseCache's, and `route` as InstrumentWSGI's
    (a function from the environ to the route template, for apps that are not Flask: the
    route that answered is checked against the rule's)."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        rules: Mapping[str, CacheRule | float],
        backend: Backend | None = None,
        lock_timeout_s: float = 10.0,
        max_entry_bytes: int = 4 << 20,
        cache_status: bool = True,
        recorder: Any = None,
        clock: Callable[[], float] = time.time,
        route: Callable[[Environ], str | None] | None = None,
    ) -> None:
        self.app = app
        self.rules = RuleSet(rules)
        self.backend: Backend = backend if backend is not None else MemoryCache()
        self.lock_timeout_s = lock_timeout_s
        self.max_entry_bytes = max_entry_bytes
        self.cache_status = cache_status
        self.clock = clock
        self.stats = CacheStats(recorder)
        self.route_of = route or flask_route
        self.flights: dict[str, _Flight] = {}
        self.flights_lock = threading.Lock()
        self.refreshing: set[str] = set()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        if method != "GET" and method != "HEAD":
            return self.app(environ, start_response)
        path: str = environ.get("PATH_INFO", "")
        found = self.rules.match(path)
        if found is None:
            return self.app(environ, start_response)
        rule, params = found
        req = self._read(environ, rule, params, path)
        template = rule.template
        if req.credentials:
            self.stats.count(template, BYPASS)
            return self.app(environ, self._bypassing(start_response))
        try:
            entry = self.backend.get(req.key)
        except BackendUnavailable:
            self.stats.count(template, ERROR)
            return self.app(environ, start_response)
        head = method == "HEAD"
        if entry is not None:
            now = self.clock()
            if now < entry.stale_until:
                environ[CACHED_ROUTE] = template
                stale = now >= entry.fresh_until
                self.stats.count(template, STALE if stale else HIT)
                if stale:
                    self._refresh_later(environ, req)
                return self._send(entry, start_response, req, head, now)
        if head:
            self.stats.count(template, MISS)
            return self.app(environ, start_response)
        with self.flights_lock:
            flight = self.flights.get(req.key)
            leader = flight is None
            if leader:
                flight = self.flights[req.key] = _Flight()
        assert flight is not None
        if not leader:
            return self._follow(flight, environ, start_response, req)
        try:
            return self._lead(environ, start_response, req, flight)
        finally:
            with self.flights_lock:
                del self.flights[req.key]
            flight.finish(None)

    def _read(self, environ: Environ, rule: CompiledRule, params: dict[str, str],
              path: str) -> CacheRequest:  # fmt: skip
        req = CacheRequest(rule, params, path)
        for header, key in _CREDENTIALS:
            if key in environ and header not in rule.per_user:
                req.credentials = True
        if "HTTP_RANGE" in environ:
            req.credentials = True
        inm = environ.get("HTTP_IF_NONE_MATCH")
        if inm is not None:
            req.if_none_match = inm.encode("latin-1")
        query = environ.get("QUERY_STRING", "").encode("latin-1")
        req.query = sorted_query(query, rule.query)
        values = [
            environ[key].encode("latin-1") if key in environ else _ABSENT
            for _, key in rule.vary_environ
        ]
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
        where = (host + "\0" + environ.get("SCRIPT_NAME", "")).encode("latin-1", "replace")
        req.key = entry_key(rule, path, req.query, values, where)
        return req

    def _send(
        self,
        entry: Entry,
        start_response: StartResponse,
        req: CacheRequest,
        head: bool,
        now: float,
        *,
        stored: bool | None = None,
        collapsed: bool = False,
    ) -> list[bytes]:
        status, headers, with_body = serve.entry_response(
            entry, req.if_none_match, now, self.cache_status, stored=bool(stored),
            collapsed=collapsed, served_from_cache=stored is None,
        )  # fmt: skip
        start_response(serve.status_line(status), _headers_out(headers))
        return [entry.body] if with_body and not head else []

    def _bypassing(self, start_response: StartResponse) -> StartResponse:
        cache_status = self.cache_status

        def start(status: str, headers: list[tuple[str, str]],
                  exc_info: ExcInfo | None = None) -> Any:  # fmt: skip
            headers = list(headers)
            if not any(k.lower() == "cache-control" for k, _ in headers):
                headers.append(("Cache-Control", "private"))
            if cache_status:
                value = serve.status_value("bypass", detail="credentials").decode()
                headers.append(("Cache-Status", value))
            if exc_info is not None:
                return start_response(status, headers, exc_info)
            return start_response(status, headers)

        return start

    def _follow(self, flight: _Flight, environ: Environ, start_response: StartResponse,
                req: CacheRequest) -> Iterable[bytes]:  # fmt: skip
        flight.done.wait(self.lock_timeout_s)
        entry = flight.entry
        template = req.rule.template
        if entry is None:
            self.stats.count(template, MISS)
            return self.app(environ, start_response)
        self.stats.count(template, HIT)
        environ[CACHED_ROUTE] = template
        return self._send(entry, start_response, req, False, self.clock(), collapsed=True)

    def _lead(self, environ: Environ, start_response: StartResponse, req: CacheRequest,
              flight: _Flight) -> Iterable[bytes]:  # fmt: skip
        template = req.rule.template
        backend = self.backend
        try:
            cached, lock = backend.get_or_lock(req.key, self.lock_timeout_s)
            deadline = time.monotonic() + self.lock_timeout_s
            delay = 0.002
            while cached is None and not lock.held and time.monotonic() < deadline:
                time.sleep(delay)
                delay = min(delay * 1.5, 0.05)
                cached, lock = backend.get_or_lock(req.key, self.lock_timeout_s)
        except BackendUnavailable:
            self.stats.count(template, ERROR)
            return self.app(environ, start_response)
        if cached is not None:
            now = self.clock()
            if now < cached.stale_until:
                flight.finish(cached)
                environ[CACHED_ROUTE] = template
                stale = now >= cached.fresh_until
                self.stats.count(template, STALE if stale else HIT)
                if stale:
                    self._refresh_later(environ, req)
                return self._send(cached, start_response, req, False, now)
        self.stats.count(template, MISS)
        return self._fill(environ, start_response, req, lock, flight)

    def _fill(self, environ: Environ, start_response: StartResponse, req: CacheRequest, lock: Lock,
              flight: _Flight | None) -> Iterable[bytes]:  # fmt: skip
        """Call the app; store its answer if it may be, and send it (or a 304)."""
        rule = req.rule
        captured: list[Any] = []
        written: list[bytes] = []

        def capture(status: str, headers: list[tuple[str, str]],
                    exc_info: ExcInfo | None = None) -> Callable[[bytes], object]:  # fmt: skip
            captured[:] = [status, headers, exc_info]
            return written.append

        stored = False
        try:
            body = self.app(environ, capture)
            try:
                if not captured:
                    # the app starts its response with the first chunk: take that much
                    iterator = iter(body)
                    first = next(iterator, None)
                    rest: Iterable[bytes] = iterator
                    chunks = [first] if first is not None else []
                else:
                    rest, chunks = body, []
                if not captured:
                    raise RuntimeError("the WSGI app returned without calling start_response")
                status_text, headers, _ = captured
                status = int(status_text[:3])
                raw = _headers_in(headers)
                v = verdict(status, raw, rule.ttl, rule.vary_bytes)
                reason = v.reason
                actual = self.route_of(environ)
                if reason is None and actual is not None and actual != UNMATCHED \
                        and not same_route(rule.template, actual):  # fmt: skip
                    reason = "route"
                    serve.warn_route(rule.template, actual)
                if reason is not None:
                    return self._pass(start_response, status_text, headers, reason,
                                      [*written, *chunks], rest, body)  # fmt: skip
                chunks = [*written, *chunks]
                size = sum(len(c) for c in chunks)
                iterator = iter(rest)
                for chunk in iterator:
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > self.max_entry_bytes:
                        return self._pass(start_response, status_text, headers, "size", chunks,
                                          iterator, body)  # fmt: skip
            except BaseException:
                _close(body)
                raise
            _close(body)
            now = self.clock()
            entry = make_entry(
                status, raw, b"".join(chunks), now=now, ttl=v.ttl,
                stale=rule.rule.stale_while_revalidate, vary=rule.rule.vary,
                per_user=bool(rule.per_user), has_cache_control=v.has_cache_control,
            )  # fmt: skip
            if flight is not None:
                flight.finish(entry)
            try:
                stored = self.backend.put(req.key, entry, req.tags(), lock)
            except BackendUnavailable:
                self.stats.count(rule.template, ERROR)
            return self._send(entry, start_response, req, False, now, stored=stored)
        finally:
            if lock.held and lock.token and not stored:
                with contextlib.suppress(BackendUnavailable):
                    self.backend.unlock(req.key, lock)

    def _pass(self, start_response: StartResponse, status: str, headers: list[tuple[str, str]],
              reason: str, chunks: list[bytes], rest: Iterable[bytes],
              body: Iterable[bytes]) -> Iterable[bytes]:  # fmt: skip
        """An answer that is not stored: sent as it came, what was read first included."""
        headers = list(headers)
        if self.cache_status:
            headers.append(("Cache-Status", serve.status_value("miss", detail=reason).decode()))
        start_response(status, headers)
        return _Chained(chunks, rest, body)

    # --- stale-while-revalidate --------------------------------------------------------

    def _refresh_later(self, environ: Environ, req: CacheRequest) -> None:
        with self.flights_lock:
            if req.key in self.refreshing:
                return
            self.refreshing.add(req.key)
        sub = {k: v for k, v in environ.items() if k not in ("HTTP_IF_NONE_MATCH", CACHED_ROUTE)}
        sub["wsgi.input"] = io.BytesIO(b"")
        thread = threading.Thread(
            target=self._refresh, args=(sub, req), name="opscope-cache-refresh", daemon=True
        )
        thread.start()

    def _refresh(self, environ: Environ, req: CacheRequest) -> None:
        template = req.rule.template
        try:
            lock = self.backend.lock(req.key, self.lock_timeout_s)
            if lock is None:
                return
            self.stats.count(template, MISS)
            fresh = CacheRequest(req.rule, req.params, req.path)
            fresh.query, fresh.key = req.query, req.key
            body = self._fill(environ, lambda *a: lambda _: None, fresh, lock, None)
            _close(body)
        except BackendUnavailable:
            self.stats.count(template, ERROR)
        except Exception:
            log.exception("opscope: refreshing a cached answer of %s failed", template)
        finally:
            with self.flights_lock:
                self.refreshing.discard(req.key)


def _close(body: Iterable[bytes]) -> None:
    close = getattr(body, "close", None)
    if close is not None:
        close()


class _Chained:
    """What was read of a body first, then the rest; closing closes the app's body."""

    def __init__(self, first: list[bytes], rest: Iterable[bytes], body: Iterable[bytes]) -> None:
        self.first = first
        self.rest = rest
        self.body = body

    def __iter__(self) -> Any:
        yield from self.first
        yield from self.rest

    def close(self) -> None:
        _close(self.body)

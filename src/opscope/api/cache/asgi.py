"""`ResponseCache`: pure-ASGI middleware that caches the answers of the routes given a rule.

    app.add_middleware(ResponseCache, rules={"/products/{product_id}": CacheRule(ttl=60)},
                       backend=RedisCache("redis://cache:6379/0"))
    app.add_middleware(Instrument)        # outermost: it sees hits too

A request no rule matches (any method but GET and HEAD, any other path) goes straight to the
app: one method test, or a dict look-up and one `startswith`. For the others, see
docs/cache.md: the key, what is never stored or shared, ETags and 304s, Cache-Control,
single-flight within the process (one asyncio future per key) and across processes (the
backend's lock), stale-while-revalidate, and what happens while the backend is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from opscope.api.cache import serve
from opscope.api.cache.entry import Entry, make_entry, verdict
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
from opscope.api.routes import CACHED_ROUTE, starlette_route
from opscope.api.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("opscope.api.cache")

_CREDENTIALS = {name.encode(): name for name in CREDENTIALS}
_ABSENT = b"\xff"


class ResponseCache:
    """ASGI middleware. `rules`: route template -> CacheRule (or a TTL in seconds).
    `backend`: MemoryCache (the default, 64 MiB) or RedisCache. `lock_timeout_s`: how long
    concurrent misses of one key wait for the request computing it (and how long a lock
    outlives a crashed holder). `max_entry_bytes`: larger answers are passed on, not stored.
    `cache_status`: add a Cache-Status header (RFC 9211) saying hit, miss or bypass.
    `recorder`: where the hit, miss, stale, bypass and error counts go (the process's by
    default, which Instrument's /metrics shows). `clock`: wall-clock seconds."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        rules: Mapping[str, CacheRule | float],
        backend: Backend | None = None,
        lock_timeout_s: float = 10.0,
        max_entry_bytes: int = 4 << 20,
        cache_status: bool = True,
        recorder: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.rules = RuleSet(rules)
        self.backend: Backend = backend if backend is not None else MemoryCache()
        self.lock_timeout_s = lock_timeout_s
        self.max_entry_bytes = max_entry_bytes
        self.cache_status = cache_status
        self.clock = clock
        self.stats = CacheStats(recorder)
        self.flights: dict[str, asyncio.Future[Entry | None]] = {}
        self.refreshing: set[str] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method != "GET" and method != "HEAD":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        found = self.rules.match(path)
        if found is None:
            await self.app(scope, receive, send)
            return
        rule, params = found
        req = self._read(scope, rule, params, path)
        template = rule.template
        if req.credentials:
            self.stats.count(template, BYPASS)
            await self.app(scope, receive, serve.bypassing(send, self.cache_status))
            return
        try:
            entry = await self.backend.aget(req.key)
        except BackendUnavailable:
            self.stats.count(template, ERROR)
            await self.app(scope, receive, send)
            return
        head = method == "HEAD"
        if entry is not None:
            now = self.clock()
            if now < entry.stale_until:
                # a hit never reaches the router: Instrument reads the route from here
                scope[CACHED_ROUTE] = template
            if now < entry.fresh_until:
                self.stats.count(template, HIT)
                await serve.send_entry(entry, send, req.if_none_match, head, now, self.cache_status)
                return
            if now < entry.stale_until:
                self.stats.count(template, STALE)
                self._refresh_later(scope, req)
                await serve.send_entry(entry, send, req.if_none_match, head, now, self.cache_status)
                return
        if head:
            # a HEAD answer has no body to store: it is the handler's, and GETs fill the cache
            self.stats.count(template, MISS)
            await self.app(scope, receive, send)
            return
        flight = self.flights.get(req.key)
        if flight is not None:
            await self._follow(flight, scope, receive, send, req)
            return
        future: asyncio.Future[Entry | None] = asyncio.get_running_loop().create_future()
        self.flights[req.key] = future
        try:
            await self._lead(scope, receive, send, req, future)
        finally:
            del self.flights[req.key]
            if not future.done():
                future.set_result(None)

    def _read(
        self, scope: Scope, rule: CompiledRule, params: dict[str, str], path: str
    ) -> CacheRequest:
        req = CacheRequest(rule, params, path)
        vary = rule.vary_bytes
        values: dict[bytes, bytes] = {}
        host = b""
        for name, value in scope.get("headers", ()):
            if name == b"host":
                host = value
            elif name in _CREDENTIALS:
                if _CREDENTIALS[name] not in rule.per_user:
                    req.credentials = True
            elif name == b"if-none-match":
                req.if_none_match = value
            elif name == b"range":
                req.credentials = True  # a part of the answer is not the answer
            if name in vary:
                values[name] = values[name] + b", " + value if name in values else value
        req.query = sorted_query(scope.get("query_string", b""), rule.query)
        where = host + b"\0" + scope.get("root_path", "").encode("utf-8", "surrogateescape")
        req.key = entry_key(
            rule, path, req.query, [values.get(v, _ABSENT) for v in sorted(vary)], where
        )
        return req

    async def _follow(
        self,
        flight: asyncio.Future[Entry | None],
        scope: Scope,
        receive: Receive,
        send: Send,
        req: CacheRequest,
    ) -> None:
        """Another request of this process is computing the answer: wait for it."""
        try:
            entry = await asyncio.wait_for(asyncio.shield(flight), self.lock_timeout_s)
        except TimeoutError:
            entry = None
        template = req.rule.template
        if entry is None:
            # its answer could not be shared (or took too long): this request gets its own
            self.stats.count(template, MISS)
            await self.app(scope, receive, send)
            return
        self.stats.count(template, HIT)
        scope[CACHED_ROUTE] = template
        await serve.send_entry(
            entry, send, req.if_none_match, False, self.clock(), self.cache_status, collapsed=True
        )

    async def _lead(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        req: CacheRequest,
        future: asyncio.Future[Entry | None],
    ) -> None:
        template = req.rule.template
        backend = self.backend
        try:
            cached, lock = await backend.aget_or_lock(req.key, self.lock_timeout_s)
            if cached is None and not lock.held:
                # another process computes it: wait for its entry, or for its lock to lapse
                deadline = time.monotonic() + self.lock_timeout_s
                delay = 0.002
                while cached is None and not lock.held and time.monotonic() < deadline:
                    await asyncio.sleep(delay)
                    delay = min(delay * 1.5, 0.05)
                    cached, lock = await backend.aget_or_lock(req.key, self.lock_timeout_s)
        except BackendUnavailable:
            self.stats.count(template, ERROR)
            await self.app(scope, receive, send)
            return
        if cached is not None:
            now = self.clock()
            if now < cached.stale_until:
                future.set_result(cached)
                scope[CACHED_ROUTE] = template
                stale = now >= cached.fresh_until
                self.stats.count(template, STALE if stale else HIT)
                if stale:
                    self._refresh_later(scope, req)
                await serve.send_entry(
                    cached, send, req.if_none_match, False, now, self.cache_status
                )
                return
        self.stats.count(template, MISS)
        await self._fill(scope, receive, send, req, lock, future)

    async def _fill(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        req: CacheRequest,
        lock: Lock,
        future: asyncio.Future[Entry | None] | None,
    ) -> None:
        """Call the app; store its answer if it may be, and send it (or a 304)."""
        rule = req.rule
        root_path = scope.get("root_path", "")
        start: Message | None = None
        chunks: list[bytes] = []
        size = 0
        passing = False
        ttl = 0.0
        has_cc = False
        stored = False

        async def capture(message: Message) -> None:
            nonlocal start, size, passing, ttl, has_cc, stored
            if passing:
                await send(message)
                return
            kind = message["type"]
            if kind == "http.response.start":
                v = verdict(message["status"], message.get("headers", ()), rule.ttl,
                            rule.vary_bytes)  # fmt: skip
                reason = v.reason
                if reason is None and scope.get("route") is not None:
                    actual = starlette_route(scope, root_path)
                    if not same_route(rule.template, actual):
                        reason = "route"
                        serve.warn_route(rule.template, actual)
                if reason is not None:
                    passing = True
                    await send(serve.with_status(message, self.cache_status, "miss", reason))
                    return
                start, ttl, has_cc = message, v.ttl, v.has_cache_control
                return
            if kind == "http.response.body" and start is not None:
                body = message.get("body", b"")
                if body:
                    chunks.append(body)
                    size += len(body)
                if size > self.max_entry_bytes:
                    passing = True
                    await send(serve.with_status(start, self.cache_status, "miss", "size"))
                    await send({"type": "http.response.body", "body": b"".join(chunks),
                                "more_body": message.get("more_body", False)})  # fmt: skip
                    return
                if message.get("more_body", False):
                    return
                now = self.clock()
                entry = make_entry(
                    start["status"], start.get("headers", ()), b"".join(chunks), now=now,
                    ttl=ttl, stale=rule.rule.stale_while_revalidate, vary=rule.rule.vary,
                    per_user=bool(rule.per_user), has_cache_control=has_cc,
                )  # fmt: skip
                if future is not None and not future.done():
                    future.set_result(entry)
                try:
                    stored = await self.backend.aput(req.key, entry, req.tags(), lock)
                except BackendUnavailable:
                    self.stats.count(rule.template, ERROR)
                await serve.send_entry(
                    entry, send, req.if_none_match, False, now, self.cache_status,
                    stored=stored,
                )  # fmt: skip
                return
            # trailers, a path to send, a body before the start: nothing to store
            passing = True
            if start is not None:
                await send(serve.with_status(start, self.cache_status, "miss", "stream"))
                if chunks:
                    await send({"type": "http.response.body", "body": b"".join(chunks),
                                "more_body": True})  # fmt: skip
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            if lock.held and lock.token and not stored:
                with contextlib.suppress(BackendUnavailable):
                    await self.backend.aunlock(req.key, lock)

    # --- stale-while-revalidate --------------------------------------------------------

    def _refresh_later(self, scope: Scope, req: CacheRequest) -> None:
        if req.key in self.refreshing:
            return
        self.refreshing.add(req.key)
        # a context of its own: its queries are not the answered request's
        task = asyncio.get_running_loop().create_task(
            self._refresh(scope, req), context=contextvars.Context()
        )
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _refresh(self, scope: Scope, req: CacheRequest) -> None:
        template = req.rule.template
        try:
            lock = await self.backend.alock(req.key, self.lock_timeout_s)
            if lock is None:
                return  # another process refreshes it
            self.stats.count(template, MISS)
            sub = dict(scope)
            sub["headers"] = [(k, v) for k, v in scope.get("headers", ()) if k != b"if-none-match"]
            done = asyncio.Event()
            sent = False

            async def receive() -> Message:
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": b"", "more_body": False}
                await done.wait()
                return {"type": "http.disconnect"}

            async def discard(message: Message) -> None:
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    done.set()

            fresh = CacheRequest(req.rule, req.params, req.path)
            fresh.query, fresh.key = req.query, req.key
            await self._fill(sub, receive, discard, fresh, lock, None)
        except BackendUnavailable:
            self.stats.count(template, ERROR)
        except Exception:
            log.exception("opscope: refreshing a cached answer of %s failed", template)
        finally:
            self.refreshing.discard(req.key)

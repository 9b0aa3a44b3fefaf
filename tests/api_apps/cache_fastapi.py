"""A FastAPI app behind opscope's ResponseCache and Instrument, run under uvicorn by
tests/test_cache_servers.py. $CACHE_BACKEND is `redis` ($REDIS_URL) or `memory`; every
handler call appends a line naming it to $CALLS_FILE (one write with O_APPEND, so the
workers' lines never mix), which is how the tests count handler calls across processes."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Header, Request, Response

from opscope.api import CacheRule, Instrument, MemoryCache, RedisCache, ResponseCache
from opscope.api.cache.store import Backend

CALLS = os.environ["CALLS_FILE"]
SLOW_S = float(os.environ.get("SLOW_S", "0.3"))
# as an app would: opscope's own log lines (the cache backend's outages) go to stderr
logging.basicConfig(level=logging.WARNING)


def called(name: str) -> None:
    fd = os.open(CALLS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{name} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


def backend() -> Backend:
    if os.environ.get("CACHE_BACKEND") == "redis":
        return RedisCache(os.environ["REDIS_URL"], retry_s=0.5)
    return MemoryCache()


RULES: dict[str, CacheRule | float] = {
    "/products/{product_id}": CacheRule(ttl=60, tags=("product:{product_id}", "products")),
    "/me": 60,
    "/greeting": CacheRule(ttl=60, vary=("accept-language",)),
    "/short": 1,
    "/stale": CacheRule(ttl=1, stale_while_revalidate=30),
}

app = FastAPI()
app.add_middleware(ResponseCache, rules=RULES, backend=backend(), lock_timeout_s=5)
app.add_middleware(Instrument)


@app.middleware("http")
async def served_by(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
    # outermost: on hits too, says which worker answered
    response = await call_next(request)
    response.headers["x-served-by"] = str(os.getpid())
    return response


@app.get("/health")
async def health() -> dict[str, bool]:
    return {"ok": True}


@app.get("/products/{product_id}")
async def product(product_id: int) -> dict[str, Any]:
    called(f"product:{product_id}")
    await asyncio.sleep(SLOW_S)
    return {"id": product_id, "name": f"product {product_id}", "price": product_id * 1.5}


@app.get("/me")
async def me(authorization: str | None = Header(default=None)) -> dict[str, Any]:
    called("me")
    return {"user": authorization or "anonymous"}


@app.get("/greeting")
async def greeting(accept_language: str | None = Header(default=None)) -> Response:
    called("greeting")
    text = "bonjour" if (accept_language or "").startswith("fr") else "hello"
    return Response(text, media_type="text/plain", headers={"vary": "Accept-Language"})


@app.get("/short")
async def short() -> dict[str, Any]:
    called("short")
    return {"at": time.time()}


@app.get("/stale")
async def stale() -> dict[str, Any]:
    called("stale")
    await asyncio.sleep(0.2)
    return {"at": time.time()}


# not cached: what the cacheability analysis tells apart
@app.get("/reports/{report_id}")
async def report(report_id: int) -> dict[str, Any]:
    await asyncio.sleep(0.01)
    return {"id": report_id, "rows": list(range(50))}


@app.get("/whoami")
async def whoami(authorization: str | None = Header(default=None)) -> dict[str, Any]:
    await asyncio.sleep(0.01)
    return {"user": authorization}


@app.get("/now")
async def now() -> dict[str, Any]:
    await asyncio.sleep(0.01)
    return {"now": time.time_ns()}

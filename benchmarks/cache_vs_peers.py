"""opscope's ResponseCache against fastapi-cache2 and cashews, on the same Redis (a
redis-server of the benchmark's own, on a free port) and the same FastAPI app.

For each: the latency of a hit (sequential in-process ASGI calls of `/items/{item_id}`, 100
keys, all cached), what it adds over the same endpoint uncached (the `bare` app), the
throughput of hits with 50 requests in flight, and the handler calls of a 100-way stampede
(100 concurrent misses of one fresh key whose handler takes 50 ms). Each variant runs in a
process of its own, the processes alternate, and the best round of each is compared (the
medians are printed too). Ratios last.

    .venv/bin/python benchmarks/cache_vs_peers.py [--requests 3000] [--rounds 3] [--repeats 3]

The peers are used as their documentation says: fastapi-cache2's `@cache(expire=60)` with its
RedisBackend, cashews' `@cache(ttl="60s", lock=True)` on `redis://` (its lock is what keeps a
stampede to one call; without it cashews calls the handler 100 times too).

Measured on this project's shared 2-core machine (load average about 4 from other work, so
the medians wander; Python 3.11, FastAPI 0.165, redis-py 8.1, Redis 7.0, fastapi-cache2 0.2.2,
cashews 7.6), --requests 2000 --rounds 3 --repeats 3, two runs:

    uncached endpoint: 41.7 µs per request (best of 9 rounds; median 60.7)
    opscope: hit 131.7 µs, adds +90.0 µs; 12,200 hits/s with 50 in flight; stampede: 1 call
    fastapi-cache2: hit 418.4 µs, adds +376.8 µs; 1,996 hits/s; stampede: 100 calls
    cashews: hit 833.4 µs, adds +791.7 µs; 1,561 hits/s; stampede: 1 call
    opscope-memory: hit 11.9 µs (-29.7 µs: a hit skips FastAPI's routing and handler); 82,630/s
    added per hit: opscope 90.0 µs, fastapi-cache2 376.8 µs, ratio 4.2x (cashews 8.8x)

    (the other run: opscope +56.8 µs, fastapi-cache2 +546.3 µs, cashews +796.9 µs: 9.6x, 14.0x)

The goal, at most half of fastapi-cache2's added cost per hit with one handler call for a
100-way stampede, is met at once: a quarter to a tenth of its cost, and 1 call against its 100.
Profiled (cProfile, Redis backend): of a hit, the middleware's own work is about 12 µs (the
memory backend's whole hit: rule match, key hash, entry decode, headers); the rest is the
Redis round trip (redis-py's asyncio client: the socket send and the wait in epoll, with
redis-server on the same two busy cores). opscope answers a hit before FastAPI routes the
request, while both peers run inside the endpoint (after routing and dependency injection)
and decode a JSON (fastapi-cache2) or pickled (cashews) value into a new Response.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from opscope.api.types import ASGIApp, Message

CALLS = {"slow": 0}
ITEM = {"name": "widget", "price": 9.5, "tags": ["a", "b"]}


def _routes(app: FastAPI, wrap: Callable[[Any], Any]) -> FastAPI:
    @app.get("/items/{item_id}")
    @wrap
    async def item(item_id: int) -> dict[str, Any]:
        return {"id": item_id, **ITEM}

    @app.get("/slow/{item_id}")
    @wrap
    async def slow(item_id: int) -> dict[str, Any]:
        CALLS["slow"] += 1
        await asyncio.sleep(0.05)
        return {"id": item_id, **ITEM}

    return app


def bare_app(redis_url: str) -> FastAPI:
    return _routes(FastAPI(), lambda f: f)


def opscope_app(redis_url: str) -> FastAPI:
    from opscope.api import RedisCache, ResponseCache
    from opscope.api.recorder import Recorder

    app = _routes(FastAPI(), lambda f: f)
    app.add_middleware(
        ResponseCache,
        rules={"/items/{item_id}": 60, "/slow/{item_id}": 60},
        backend=RedisCache(redis_url, prefix="bench-opscope:"),
        recorder=Recorder(),
    )
    return app


def opscope_memory_app(redis_url: str) -> FastAPI:
    from opscope.api import MemoryCache, ResponseCache
    from opscope.api.recorder import Recorder

    app = _routes(FastAPI(), lambda f: f)
    app.add_middleware(
        ResponseCache,
        rules={"/items/{item_id}": 60, "/slow/{item_id}": 60},
        backend=MemoryCache(),
        recorder=Recorder(),
    )
    return app


def fastapi_cache2_app(redis_url: str) -> FastAPI:
    from fastapi_cache import FastAPICache
    from fastapi_cache.backends.redis import RedisBackend
    from fastapi_cache.decorator import cache
    from redis import asyncio as aioredis

    FastAPICache.init(RedisBackend(aioredis.from_url(redis_url)), prefix="bench-fc2")
    return _routes(FastAPI(), cache(expire=60))


def cashews_app(redis_url: str) -> FastAPI:
    from cashews import cache

    cache.setup(redis_url)
    return _routes(FastAPI(), cache(ttl="60s", lock=True))


MAKERS: dict[str, Callable[[str], FastAPI]] = {
    "bare": bare_app,
    "opscope": opscope_app,
    "fastapi-cache2": fastapi_cache2_app,
    "cashews": cashews_app,
    "opscope-memory": opscope_memory_app,
}
PEERS = ("opscope", "fastapi-cache2", "cashews", "opscope-memory")


def _scope(path: str) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"host", b"bench"), (b"accept", b"application/json")],
        "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip


async def _call(app: ASGIApp, path: str) -> int:
    status = 0

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(_scope(path), receive, send)
    return status


async def sequential(app: ASGIApp, requests: int) -> float:
    """Seconds per request, one after the other over 100 cached keys."""
    paths = [f"/items/{i % 100}" for i in range(requests)]
    start = time.perf_counter()
    for p in paths:
        await _call(app, p)
    return (time.perf_counter() - start) / requests


async def concurrent(app: ASGIApp, requests: int, in_flight: int = 50) -> float:
    """Requests per second with `in_flight` at a time."""
    queue = [f"/items/{i % 100}" for i in range(requests)]

    async def client() -> None:
        while queue:
            await _call(app, queue.pop())

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(in_flight)))
    return requests / (time.perf_counter() - start)


async def stampede(app: ASGIApp, key: int, n: int = 100) -> int:
    before = CALLS["slow"]
    statuses = await asyncio.gather(*(_call(app, f"/slow/{key}") for _ in range(n)))
    assert set(statuses) == {200}, statuses
    return CALLS["slow"] - before


def measure(name: str, redis_url: str, requests: int, rounds: int) -> dict[str, Any]:
    app = MAKERS[name](redis_url)

    async def bench() -> dict[str, Any]:
        await sequential(app, 2000)  # warm-up, and fills the 100 keys
        latency = [await sequential(app, requests) for _ in range(rounds)]
        throughput = [await concurrent(app, requests) for _ in range(rounds)]
        key = int(time.time() * 1000) % 10**9 + os.getpid()  # a key no round used
        calls = await stampede(app, key)
        return {"latency": latency, "throughput": throughput, "stampede_calls": calls}

    return asyncio.run(bench())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(directory: str) -> tuple[subprocess.Popen[bytes], str]:
    import redis

    port = _free_port()
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (scripts/setup installs it)")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", directory],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(500):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.01)
    client.close()
    return proc, f"redis://127.0.0.1:{port}/0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variant", choices=list(MAKERS), help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(measure(args.variant, args.redis_url, args.requests, args.rounds)))
        return
    with tempfile.TemporaryDirectory() as directory:
        proc, url = start_redis(directory)
        try:
            results = _run_all(url, args.requests, args.rounds, args.repeats)
        finally:
            proc.kill()
            proc.wait()
    _report(results)


def _run_all(url: str, requests: int, rounds: int, repeats: int) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {
        n: {"latency": [], "throughput": [], "stampede_calls": []} for n in MAKERS
    }
    for _ in range(repeats):
        for name in MAKERS:
            out = subprocess.run(
                [sys.executable, __file__, "--variant", name, "--redis-url", url,
                 "--requests", str(requests), "--rounds", str(rounds)],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            got = json.loads(out)
            results[name]["latency"] += got["latency"]
            results[name]["throughput"] += got["throughput"]
            results[name]["stampede_calls"].append(got["stampede_calls"])
    return results


def _report(results: dict[str, dict[str, Any]]) -> None:
    best = {n: min(r["latency"]) * 1e6 for n, r in results.items()}
    median = {n: statistics.median(r["latency"]) * 1e6 for n, r in results.items()}
    rps = {n: max(r["throughput"]) for n, r in results.items()}
    calls = {n: max(r["stampede_calls"]) for n, r in results.items()}
    rounds = len(results["bare"]["latency"])
    print(
        f"uncached endpoint: {best['bare']:.1f} µs per request (best of {rounds} rounds; "
        f"median {median['bare']:.1f}), {rps['bare']:,.0f} requests/s with 50 in flight"
    )
    added = {n: best[n] - best["bare"] for n in PEERS}
    for n in PEERS:
        print(
            f"{n}: hit {best[n]:.1f} µs, adds {added[n]:+.1f} µs over uncached (medians "
            f"{median[n]:.1f}, {median[n] - median['bare']:+.1f}); {rps[n]:,.0f} hits/s with 50 "
            f"in flight; 100-way stampede: {calls[n]} handler call(s) (most of "
            f"{len(results[n]['stampede_calls'])} runs)"
        )
    print(
        f"stampede handler calls: opscope {calls['opscope']}, fastapi-cache2 "
        f"{calls['fastapi-cache2']}, cashews {calls['cashews']}"
    )
    # the goal: at most half of fastapi-cache2's added cost per hit, and one handler call
    ours = max(added["opscope"], 0.1)
    print(
        f"added per hit over uncached: opscope {added['opscope']:.1f} µs, fastapi-cache2 "
        f"{added['fastapi-cache2']:.1f} µs, cashews {added['cashews']:.1f} µs; ratio "
        f"fastapi-cache2/opscope {added['fastapi-cache2'] / ours:.1f}x, cashews/opscope "
        f"{added['cashews'] / ours:.1f}x"
    )


if __name__ == "__main__":
    main()

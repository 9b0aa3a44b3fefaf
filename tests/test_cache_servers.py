"""The response cache end to end: real FastAPI apps under uvicorn (one worker and two) and a
real Flask app under gunicorn (two threaded workers), on a redis-server of the test's own.
Handler calls are counted by the apps themselves (a line per call in a file every worker
appends to), never by the cache under test."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from api_servers import APPS, free_port, opscope, serve
from redis_server import RedisServer

STAMPEDE = 100


def _env(calls: Path, backend: str, redis_url: str | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(APPS), "CALLS_FILE": str(calls),
           "CACHE_BACKEND": backend}  # fmt: skip
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


@contextmanager
def fastapi_server(tmp: Path, name: str, backend: str, redis: RedisServer | None = None,
            workers: int = 1) -> Iterator[str]:  # fmt: skip
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "cache_fastapi:app", "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(workers), "--log-level", "warning"]  # fmt: skip
    env = _env(tmp / "calls.txt", backend, redis.url if redis else None)
    if workers > 1:
        (tmp / f"{name}-mp").mkdir(exist_ok=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp / f"{name}-mp")
    with serve(argv, env, port, tmp / f"{name}.log") as base:
        yield base


@contextmanager
def flask_server(tmp: Path, redis: RedisServer, workers: int = 2) -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-k", "gthread",
            "--threads", "64", "-b", f"127.0.0.1:{port}", "cache_flask:app"]  # fmt: skip
    env = _env(tmp / "calls.txt", "redis", redis.url)
    (tmp / "flask-mp").mkdir(exist_ok=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp / "flask-mp")
    with serve(argv, env, port, tmp / "gunicorn.log") as base:
        yield base


def calls(tmp: Path) -> Counter[str]:
    path = tmp / "calls.txt"
    if not path.exists():
        return Counter()
    return Counter(line.split()[0] for line in path.read_text().splitlines())


async def _stampede(url: str, n: int = STAMPEDE) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        return await asyncio.gather(*(client.get(url) for _ in range(n)))


def stampede(url: str, n: int = STAMPEDE) -> list[httpx.Response]:
    return asyncio.run(_stampede(url, n))


def _one_call_for_many(base: str, tmp: Path, workers: int) -> None:
    """100 concurrent misses of one key: one handler call, the same answer for all; with
    several workers, retried on a fresh key until the misses reached every worker."""
    for product in range(1, 6):
        responses = stampede(f"{base}/products/{product}")
        assert {r.status_code for r in responses} == {200}
        assert len({r.content for r in responses}) == 1
        assert len({r.headers["etag"] for r in responses}) == 1
        assert calls(tmp)[f"product:{product}"] == 1, calls(tmp)
        statuses = Counter(r.headers["cache-status"] for r in responses)
        assert statuses["opscope; fwd=miss; stored"] == 1, statuses
        if len({r.headers["x-served-by"] for r in responses}) >= workers:
            return
    raise AssertionError(f"the misses never reached all {workers} workers")


def test_fastapi_stampede_in_one_process(tmp_path: Path, redis_server: RedisServer) -> None:
    with fastapi_server(tmp_path, "one", "redis", redis_server) as base:
        _one_call_for_many(base, tmp_path, workers=1)
    # the memory backend: the process's own single-flight
    with fastapi_server(tmp_path, "memory", "memory") as base:
        responses = stampede(f"{base}/products/9")
        assert {r.status_code for r in responses} == {200}
        assert calls(tmp_path)["product:9"] == 1


def test_fastapi_stampede_across_two_workers(tmp_path: Path, redis_server: RedisServer) -> None:
    with fastapi_server(tmp_path, "two", "redis", redis_server, workers=2) as base:
        _one_call_for_many(base, tmp_path, workers=2)
        # the entry is shared: every worker answers it from Redis
        again = stampede(f"{base}/products/1", 20)
        assert {r.headers["cache-status"].split(";")[1].strip() for r in again} == {"hit"}
        assert calls(tmp_path)["product:1"] == 1


def test_flask_stampede_across_two_workers(tmp_path: Path, redis_server: RedisServer) -> None:
    with flask_server(tmp_path, redis_server) as base:
        _one_call_for_many(base, tmp_path, workers=2)
        _no_leaks(base, tmp_path)
        first = httpx.get(f"{base}/products/1")
        tag = first.headers["etag"]
        again = httpx.get(f"{base}/products/1", headers={"if-none-match": tag})
        assert again.status_code == 304 and again.headers["etag"] == tag and not again.content


def _no_leaks(base: str, tmp: Path) -> None:
    """Requests with Authorization are never answered from, or stored in, a shared entry;
    a rule's vary headers keep their variants apart."""
    with httpx.Client(base_url=base) as client:
        anonymous = client.get("/me").json()
        assert anonymous == {"user": "anonymous"}
        for _ in range(2):
            for user in ("Bearer alice", "Bearer bob"):
                r = client.get("/me", headers={"authorization": user})
                assert r.json() == {"user": user}
                assert r.headers["cache-control"] == "private"
                assert "bypass" in r.headers["cache-status"]
        # the anonymous answer was stored; the users' were not
        assert client.get("/me").json() == {"user": "anonymous"}
        assert calls(tmp)["me"] == 5
        for _ in range(2):
            assert client.get("/greeting", headers={"accept-language": "fr-FR"}).text == "bonjour"
            assert client.get("/greeting", headers={"accept-language": "en"}).text == "hello"
            assert client.get("/greeting").text == "hello"
        assert calls(tmp)["greeting"] == 3
        r = client.get("/greeting", headers={"accept-language": "fr-FR"})
        assert r.headers["vary"].lower() == "accept-language"
        assert r.headers["cache-status"].startswith("opscope; hit")


def test_fastapi_no_leaks_ttl_and_same_etag_from_two_processes(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    # two servers with memory backends: each computes the entry itself, and the ETags agree
    with fastapi_server(tmp_path, "a", "memory") as a, fastapi_server(tmp_path, "b", "memory") as b:
        first = httpx.get(f"{a}/products/3")
        tag = first.headers["etag"]
        assert tag.startswith('"') and not tag.startswith("W/")
        other = httpx.get(f"{b}/products/3", headers={"if-none-match": tag})
        assert other.status_code == 304, other.headers
        assert other.headers["etag"] == tag and other.content == b""
        assert calls(tmp_path)["product:3"] == 2
        assert httpx.get(f"{b}/products/3", headers={"if-none-match": '"nope"'}).status_code == 200
    with fastapi_server(tmp_path, "c", "redis", redis_server) as base:
        _no_leaks(base, tmp_path)
        # TTL: one second, then the handler again
        with httpx.Client(base_url=base) as client:
            first = client.get("/short")
            assert client.get("/short").json() == first.json()
            assert calls(tmp_path)["short"] == 1
            assert first.headers["cache-control"] == "public, max-age=1"
            time.sleep(1.3)
            assert client.get("/short").json() != first.json()
            assert calls(tmp_path)["short"] == 2


def test_invalidation_by_tag_and_path_from_the_cli(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with (
        fastapi_server(tmp_path, "inv", "redis", redis_server, workers=2) as base,
        httpx.Client(base_url=base) as client,
    ):
        for product in (5, 6, 7):
            client.get(f"/products/{product}")
            assert (
                client.get(f"/products/{product}")
                .headers["cache-status"]
                .startswith("opscope; hit")
            )
        done = opscope("cache", "invalidate", "--tag", "product:5", "--redis-url",
                       redis_server.url, cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "1 entr" in done.stdout
        assert "miss" in client.get("/products/5").headers["cache-status"]
        assert "hit" in client.get("/products/6").headers["cache-status"]
        done = opscope("cache", "invalidate", "--path", "/products/6", "--redis-url",
                       redis_server.url, cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "miss" in client.get("/products/6").headers["cache-status"]
        done = opscope("cache", "invalidate", "--tag", "products", "--redis-url",
                       redis_server.url, cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "3 entries" in done.stdout
        for product in (5, 6, 7):
            assert "miss" in client.get(f"/products/{product}").headers["cache-status"]
        assert calls(tmp_path) == Counter({"product:5": 3, "product:6": 3, "product:7": 2})


def test_redis_killed_then_restarted(tmp_path: Path, redis_server: RedisServer) -> None:
    log = tmp_path / "outage.log"
    with (
        fastapi_server(tmp_path, "outage", "redis", redis_server) as base,
        httpx.Client(base_url=base) as client,
    ):
        client.get("/products/1")
        assert "hit" in client.get("/products/1").headers["cache-status"]
        redis_server.kill()
        for _ in range(5):
            r = client.get("/products/1")
            assert r.status_code == 200 and r.json()["id"] == 1
        assert calls(tmp_path)["product:1"] == 6
        metrics = client.get("/metrics").text
        assert 'opscope_cache_errors_total{http_route="/products/{product_id}"} 5.0' in metrics
        redis_server.start()
        time.sleep(0.6)  # the backend's retry_s
        client.get("/products/1")
        assert "hit" in client.get("/products/1").headers["cache-status"]
        assert calls(tmp_path)["product:1"] == 7
    text = log.read_text()
    assert text.count("is unavailable") == 1, text
    assert text.count("is back") == 1, text


def test_stale_while_revalidate(tmp_path: Path, redis_server: RedisServer) -> None:
    with (
        fastapi_server(tmp_path, "swr", "redis", redis_server) as base,
        httpx.Client(base_url=base) as client,
    ):
        first = client.get("/stale").json()
        time.sleep(1.2)
        began = time.monotonic()
        stale = client.get("/stale")
        # the old answer at once (the handler takes 200 ms), refreshed behind it
        assert time.monotonic() - began < 0.15
        assert stale.json() == first
        assert "ttl=-" in stale.headers["cache-status"]
        deadline = time.monotonic() + 5
        while calls(tmp_path)["stale"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the call is written when the handler begins: let it end
        fresh = client.get("/stale")
        assert fresh.json() != first
        assert fresh.headers["cache-status"].startswith("opscope; hit; ttl=")
        assert "ttl=-" not in fresh.headers["cache-status"]
        assert calls(tmp_path)["stale"] == 2


def test_a_crashed_lock_holder_never_blocks_the_key(redis_server: RedisServer) -> None:
    """A lock left by a process that died (taken, never released) lapses after its timeout."""
    from opscope.api.cache.redisstore import RedisCache

    cache = RedisCache(redis_server.url)
    entry, lock = cache.get_or_lock("k", 0.3)
    assert entry is None and lock.held
    began = time.monotonic()
    _, waiter = cache.get_or_lock("k", 0.3)
    assert not waiter.held
    while not waiter.held:
        assert time.monotonic() - began < 2
        time.sleep(0.02)
        _, waiter = cache.get_or_lock("k", 0.3)
    assert 0.25 < time.monotonic() - began < 1.0
    cache.close()


def test_invalidate_names_the_cache_of_a_configured_api_and_fails_in_one_line(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    password_url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    (tmp_path / "opscope.yaml").write_text(
        f"""apis:
  shop: {{cache: {{redis_url: "{redis_server.url}", prefix: "opscope:cache:"}}}}
  nocache: {{base_url: "http://127.0.0.1:1"}}
  down: {{cache: {{redis_url: "{password_url}"}}}}
"""
    )
    ok = opscope("cache", "invalidate", "shop", "--tag", "t", cwd=tmp_path)
    assert ok.returncode == 0 and "invalidated 0 entries (tag t)" in ok.stdout, ok.stderr
    for args, message in [
        (("shop",), "give --tag or --path"),
        (("nosuch", "--tag", "t"), "no API named 'nosuch'"),
        (("nocache", "--tag", "t"), "has no cache"),
        (("shop", "--path", "relative"), "does not start with /"),
        (("down", "--tag", "t"), "redis at redis://:********@127.0.0.1"),
    ]:
        failed = opscope("cache", "invalidate", *args, cwd=tmp_path)
        assert failed.returncode == 2, (args, failed.stderr)
        [line] = failed.stderr.splitlines()
        assert line.startswith("opscope: error: ") and message in line, line
        assert "s3cret" not in failed.stderr

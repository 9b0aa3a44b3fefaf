"""The response cache's logic with plain inputs: templates, keys, the entry format, ETags,
what may be stored, the memory LRU, the TTL and hit-ratio projection; and the middleware
itself in-process around tiny ASGI and WSGI apps (memory backend, real threads)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opscope.api.cache.asgi import ResponseCache
from opscope.api.cache.entry import (
    Entry,
    decode,
    etag_matches,
    make_entry,
    strong_etag,
    verdict,
)
from opscope.api.cache.memory import MemoryCache
from opscope.api.cache.rules import (
    CacheRule,
    RuleSet,
    compile_rule,
    compile_template,
    same_route,
    sorted_query,
    tags_of_paths,
)
from opscope.api.cache.wsgi import ResponseCacheWSGI
from opscope.api.cachechecks import nice_ttl, projected_hit_ratio
from opscope.api.recorder import Recorder
from opscope.api.types import Message, Receive, Scope, Send


def test_templates_of_starlette_and_flask() -> None:
    regex, names = compile_template("/tenants/{tenant}/reports/{year:int}/{rest:path}")
    m = regex.fullmatch("/tenants/acme/reports/2026/a/b.csv")
    assert m is not None and names == ("tenant", "year", "rest")
    assert m.groupdict() == {"tenant": "acme", "year": "2026", "rest": "a/b.csv"}
    assert regex.fullmatch("/tenants/acme/reports/x/a") is None
    regex, names = compile_template("/orders/<int:order_id>/<any(pdf, csv):fmt>/<name>")
    assert regex.fullmatch("/orders/17/pdf/x") is not None
    assert regex.fullmatch("/orders/17/doc/x") is None
    assert names == ("order_id", "fmt", "name")
    with pytest.raises(ValueError, match="unknown converter"):
        compile_template("/x/{a:weird}")
    with pytest.raises(ValueError, match="start with /"):
        compile_template("x")


def test_rule_set_finds_static_then_dynamic_and_skips_the_rest() -> None:
    rules = RuleSet({"/items/featured": 5, "/items/{item_id:int}": 10, "/users/<name>": 1})
    found = rules.match("/items/featured")
    assert found is not None and found[0].template == "/items/featured"
    found = rules.match("/items/42")
    assert found is not None and found[1] == {"item_id": "42"}
    assert rules.match("/items/x") is None
    assert rules.match("/health") is None
    assert same_route("/items/{item_id:int}", "/items/{item_id}")
    assert same_route("/users/<string(length=2):name>", "/users/<name>")
    assert not same_route("/items/{item_id}", "/items/featured")


def test_rule_validation_and_tags() -> None:
    rule = compile_rule("/p/{pid}", CacheRule(ttl=5, tags=("product:{pid}", "all")))
    assert rule.tags_for({"pid": "7"}) == ["product:7", "all"]
    with pytest.raises(ValueError, match="names no path parameter"):
        compile_rule("/p/{pid}", CacheRule(ttl=5, tags=("x:{other}",)))
    with pytest.raises(ValueError, match="tuple of strings"):
        CacheRule(ttl=5, vary="accept")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="more than 0"):
        CacheRule(ttl=0)
    assert CacheRule(ttl=1, vary=("Accept-Language", "accept-language")).vary == (
        "accept-language",
    )
    assert compile_rule("/me", CacheRule(ttl=1, vary=("Authorization",))).per_user == {
        "authorization"
    }


def test_query_sorted_and_filtered() -> None:
    assert sorted_query(b"b=2&a=1&c=3", None) == b"a=1&b=2&c=3"
    assert sorted_query(b"b=2&utm=x&a=1", frozenset({b"a", b"b"})) == b"a=1&b=2"
    assert sorted_query(b"", None) == b""
    assert tags_of_paths(["/p", "/s?b=2&a=1"]) == ["path:/p", "url:/s?a=1&b=2"]


_headers = st.lists(
    st.tuples(st.binary(min_size=1, max_size=20), st.binary(max_size=50)), max_size=6
)


@given(
    st.integers(100, 599), _headers, st.binary(max_size=2000),
    st.floats(0, 2e9), st.floats(0, 1e6), st.floats(0, 1e6),
)  # fmt: skip
def test_entries_read_back_as_written(
    status: int, headers: list[tuple[bytes, bytes]], body: bytes, at: float, ttl: float, swr: float
) -> None:
    entry = Entry(status, headers, body, b"", at, at + ttl, at + ttl + swr)
    back = decode(entry.encode())
    assert back is not None
    assert (back.status, back.headers, back.body) == (status, headers, body)
    assert (back.stored_at, back.fresh_until, back.stale_until) == (at, at + ttl, at + ttl + swr)


@given(st.binary(max_size=300))
def test_anything_else_decodes_to_nothing_or_an_entry_never_an_error(blob: bytes) -> None:
    decode(blob)
    decode(b"OPC1" + blob)


def test_etags_are_deterministic_and_tell_representations_apart() -> None:
    h = [(b"content-type", b"application/json")]
    one = strong_etag(200, h, b'{"a":1}')
    assert one == strong_etag(200, list(h), b'{"a":1}')
    assert one.startswith(b'"') and one.endswith(b'"')
    assert one != strong_etag(200, h, b'{"a":2}')
    assert one != strong_etag(200, [(b"content-type", b"text/plain")], b'{"a":1}')
    assert one != strong_etag(200, [*h, (b"content-encoding", b"gzip")], b'{"a":1}')
    # headers that do not describe the representation do not change it
    assert one == strong_etag(200, [*h, (b"x-request-id", b"42")], b'{"a":1}')
    assert etag_matches(b'"x", ' + one, one) and etag_matches(b"W/" + one, one)
    assert etag_matches(b"*", one) and not etag_matches(b'"other"', one)


@pytest.mark.parametrize(
    ("status", "headers", "stored", "ttl"),
    [
        (200, [], True, 60),
        (203, [(b"cache-control", b"public, max-age=10")], True, 10),
        (200, [(b"cache-control", b"s-maxage=5, max-age=100")], True, 5),
        (200, [(b"cache-control", b"max-age=600")], True, 60),
        (200, [(b"cache-control", b"max-age=0")], False, 0),
        (200, [(b"cache-control", b"no-store")], False, 0),
        (200, [(b"cache-control", b"Private")], False, 0),
        (200, [(b"cache-control", b"no-cache")], False, 0),
        (200, [(b"set-cookie", b"s=1")], False, 0),
        (200, [(b"vary", b"Accept-Language")], True, 60),
        (200, [(b"vary", b"accept-language, Accept-Encoding")], False, 0),
        (200, [(b"vary", b"*")], False, 0),
        (200, [(b"content-type", b"text/event-stream")], False, 0),
        (206, [], False, 0),
        (301, [], False, 0),
        (404, [], False, 0),
        (500, [], False, 0),
    ],
)
def test_what_may_be_stored(
    status: int, headers: list[tuple[bytes, bytes]], stored: bool, ttl: float
) -> None:
    v = verdict(status, headers, 60.0, frozenset({b"accept-language"}))
    assert (v.reason is None) is stored
    assert v.ttl == ttl


def test_an_entry_gets_etag_vary_and_cache_control() -> None:
    e = make_entry(
        200, [(b"content-type", b"text/plain"), (b"date", b"x"), (b"content-length", b"2")],
        b"hi", now=100.0, ttl=30, stale=10, vary=("accept-language",), per_user=False,
        has_cache_control=False,
    )  # fmt: skip
    names = dict(e.headers)
    assert b"date" not in names and b"content-length" not in names
    assert names[b"etag"] == e.etag
    assert names[b"vary"] == b"accept-language"
    assert names[b"cache-control"] == b"public, max-age=30, stale-while-revalidate=10"
    assert (e.fresh_until, e.stale_until) == (130.0, 140.0)
    own = make_entry(200, [(b"etag", b'W/"v1"')], b"", now=0, ttl=1, stale=0, vary=(),
                     per_user=True, has_cache_control=False)  # fmt: skip
    assert own.etag == b'W/"v1"' and dict(own.headers)[b"cache-control"] == b"private, max-age=1"


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _entry(body: bytes, now: float = 1000.0, ttl: float = 60) -> Entry:
    return Entry(200, [], body, b'"e"', now, now + ttl, now + ttl)


def test_memory_cache_is_an_lru_bounded_in_bytes() -> None:
    clock = _Clock()
    cache = MemoryCache(max_bytes=8000, clock=clock)
    lock = cache.lock("k", 1)
    assert lock is not None
    for i in range(14):
        assert cache.put(f"k{i}", _entry(b"x" * 600), [f"t{i}"], lock)
        assert cache.bytes <= 8000
    assert cache.get("k0") is None and cache.get("k9") is not None
    assert len(cache.entries) == 8000 // 720
    assert cache.tags.keys() == {f"t{i}" for i in range(14) if f"k{i}" in cache.entries}
    assert not cache.put("big", _entry(b"x" * 2000), [], lock)  # over an eighth of the bound
    cache.get("k5")  # used: the next eviction takes another one first
    cache.put("new", _entry(b"x" * 600), [], lock)
    assert cache.get("k5") is not None
    clock.now += 61
    assert cache.get("k9") is None  # expired


def test_memory_invalidation_by_tag_and_path_and_the_epoch() -> None:
    cache = MemoryCache()
    lock = cache.lock("k", 1)
    assert lock is not None
    cache.put("a", _entry(b"a", time.time()), ["product:1", "path:/p/1"], lock)
    cache.put("b", _entry(b"b", time.time()), ["product:2", "path:/p/2", "url:/p/2?x=1"], lock)
    assert cache.invalidate(tags=["product:1"]) == 1
    assert cache.get("a") is None and cache.get("b") is not None
    # the answer computed under the old epoch is refused
    assert not cache.put("a", _entry(b"a", time.time()), [], lock)
    assert cache.invalidate(paths=["/p/2?x=1"]) == 1
    assert cache.invalidate(paths=["/p/2"]) == 0


def test_the_ttl_and_the_hit_ratio_projected() -> None:
    assert [nice_ttl(s) for s in (0.5, 1, 4.9, 29, 61, 10**6)] == [1, 1, 2, 15, 60, 86400]
    # one distinct request, 10/s, TTL 10 s: 100 hits per miss
    assert projected_hit_ratio(0.999, 1000, 1, 100, 10) == pytest.approx(100 / 101)
    # never above what repeated
    assert projected_hit_ratio(0.5, 1000, 1, 100, 10) == 0.5
    # a request per distinct key per 100 s with a 10 s TTL: few hits
    assert projected_hit_ratio(0.9, 100, 100, 100, 10) == pytest.approx(0.1 / 1.1)


# --- the ASGI middleware around a bare ASGI app -------------------------------------------


class _App:
    """An ASGI app whose answers the test sets per path; counts its calls."""

    def __init__(self, answers: dict[str, tuple[int, list[tuple[bytes, bytes]], list[bytes]]],
                 delay: float = 0.0) -> None:  # fmt: skip
        self.answers = answers
        self.delay = delay
        self.calls: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        self.calls[path] = self.calls.get(path, 0) + 1
        if self.delay:
            await asyncio.sleep(self.delay)
        status, headers, chunks = self.answers[path]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        for i, chunk in enumerate(chunks):
            await send({"type": "http.response.body", "body": chunk,
                        "more_body": i < len(chunks) - 1})  # fmt: skip


async def _get(app: Any, path: str, headers: Iterable[tuple[bytes, bytes]] = (),
               method: str = "GET") -> tuple[int, dict[bytes, bytes], bytes]:  # fmt: skip
    path, _, query = path.partition("?")
    scope = {"type": "http", "method": method, "path": path, "root_path": "",
             "query_string": query.encode(), "headers": list(headers)}  # fmt: skip
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start["headers"]), body


JSON = [(b"content-type", b"application/json")]


def test_asgi_stores_only_what_it_may_and_keys_on_vary() -> None:
    app = _App({
        "/ok": (200, JSON, [b'{"a":', b"1}"]),
        "/lang": (200, [(b"vary", b"accept-language")], [b"x"]),
        "/cookie": (200, [(b"set-cookie", b"s=1")], [b"c"]),
        "/err": (500, [], [b"e"]),
        "/nostore": (200, [(b"cache-control", b"no-store")], [b"n"]),
        "/undeclared": (200, [(b"vary", b"x-tenant")], [b"v"]),
        "/big": (200, [], [b"x" * 600, b"y" * 600]),
    })  # fmt: skip
    rules: dict[str, CacheRule | float] = {p: 60 for p in app.answers}
    rules["/lang"] = CacheRule(ttl=60, vary=("accept-language",))
    recorder = Recorder()
    cache = ResponseCache(app, rules=rules, recorder=recorder, max_entry_bytes=1000)

    async def run() -> None:
        for path in app.answers:
            for _ in range(3):
                status, headers, body = await _get(cache, path)
                assert status == app.answers[path][0]
                assert body == b"".join(app.answers[path][2])
        for lang in (b"fr", b"en", b"fr", b"en"):
            _, headers, _ = await _get(cache, "/lang", [(b"accept-language", lang)])
        assert headers[b"cache-status"].startswith(b"opscope; hit")
        status, headers, body = await _get(cache, "/ok", method="HEAD")
        assert status == 200 and body == b"" and headers[b"content-length"] == b"7"
        etag = headers[b"etag"]
        status, headers, body = await _get(cache, "/ok", [(b"if-none-match", etag)])
        assert status == 304 and body == b"" and headers[b"etag"] == etag

    asyncio.run(run())
    assert app.calls == {"/ok": 1, "/lang": 3, "/cookie": 3, "/err": 3, "/nostore": 3,
                         "/undeclared": 3, "/big": 3}  # fmt: skip
    counts = recorder.cache
    assert counts["/ok"] == [4, 1, 0, 0, 0]  # 2 GETs, the HEAD, the 304; one miss
    assert counts["/lang"] == [4, 3, 0, 0, 0]  # no language, fr, en: three entries


def test_asgi_single_flight_in_one_event_loop() -> None:
    app = _App({"/slow": (200, JSON, [b"{}"])}, delay=0.05)
    cache = ResponseCache(app, rules={"/slow": 60}, recorder=Recorder())

    async def run() -> list[tuple[int, dict[bytes, bytes], bytes]]:
        return await asyncio.gather(*(_get(cache, "/slow") for _ in range(100)))

    answers = asyncio.run(run())
    assert app.calls == {"/slow": 1}
    assert {a[0] for a in answers} == {200}
    assert sum(a[1][b"cache-status"] == b"opscope; fwd=miss; collapsed" for a in answers) == 99


def test_asgi_never_shares_answers_to_credentials_unless_keyed_on_them() -> None:
    app = _App({"/me": (200, JSON, [b"{}"]), "/mine": (200, JSON, [b"{}"])})
    rules: dict[str, CacheRule | float] = {
        "/me": 60, "/mine": CacheRule(ttl=60, vary=("authorization",))
    }  # fmt: skip
    cache = ResponseCache(app, rules=rules, recorder=Recorder())

    async def run() -> None:
        for user in (b"Bearer a", b"Bearer b", b"Bearer a"):
            _, headers, _ = await _get(cache, "/me", [(b"authorization", user)])
            assert headers[b"cache-control"] == b"private"
            _, headers, _ = await _get(cache, "/mine", [(b"authorization", user)])
            assert headers[b"cache-control"] == b"private, max-age=60"
        _, headers, _ = await _get(cache, "/me", [(b"cookie", b"s=1")])
        _, headers, _ = await _get(cache, "/mine", [(b"cookie", b"s=1")])
        assert b"bypass" in headers[b"cache-status"]

    asyncio.run(run())
    assert app.calls == {"/me": 4, "/mine": 3}  # a, b, then a from its own entry; the cookie


def test_asgi_keys_apart_hosts_and_mount_points() -> None:
    app = _App({"/home": (200, JSON, [b"{}"])})
    cache = ResponseCache(app, rules={"/home": 60}, recorder=Recorder())

    async def run() -> None:
        for host in (b"a.example", b"b.example", b"a.example"):
            await _get(cache, "/home", [(b"host", host)])

    asyncio.run(run())
    assert app.calls == {"/home": 2}


# --- the WSGI middleware under real threads ------------------------------------------------


def test_wsgi_single_flight_across_threads() -> None:
    calls = []
    lock = threading.Lock()

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        with lock:
            calls.append(environ["PATH_INFO"])
        time.sleep(0.1)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"one ", b"answer"]

    cache = ResponseCacheWSGI(app, rules={"/p/<int:n>": 60}, recorder=Recorder())
    results: list[tuple[str, bytes]] = []

    def get() -> None:
        got: list[str] = []

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            got.append(status)
            return lambda _: None

        body = b"".join(cache({"REQUEST_METHOD": "GET", "PATH_INFO": "/p/1"}, start))
        with lock:
            results.append((got[0], body))

    threads = [threading.Thread(target=get) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["/p/1"]
    assert results == [("200 OK", b"one answer")] * 50


def test_cache_metrics_exposition_is_the_golden_one() -> None:
    """A FastAPI app with ResponseCache inside Instrument, fixed clocks: the whole /metrics
    text byte for byte (tests/golden/cache_metrics.txt). Hits are recorded under the rule's
    template although no router ran for them."""
    import itertools
    import os
    from pathlib import Path

    import httpx
    from fastapi import FastAPI

    from opscope.api.asgi import Instrument
    from opscope.api.exposition import metrics_text

    golden = Path(__file__).resolve().parent / "golden" / "cache_metrics.txt"
    recorder = Recorder(wall_clock=lambda: 1_800_000_000.0)
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, Any]:
        return {"id": item_id}

    @app.get("/plain")
    async def plain() -> dict[str, Any]:
        return {}

    ticks = itertools.count()
    app.add_middleware(
        ResponseCache, rules={"/items/{item_id}": 30}, recorder=recorder,
        clock=lambda: 1_800_000_000.0,
    )  # fmt: skip
    app.add_middleware(Instrument, recorder=recorder, timer=lambda: next(ticks) / 1000)
    calls = [
        ("GET", "/items/1", {}),  # miss
        ("GET", "/items/1", {}),  # hit
        ("HEAD", "/items/1", {}),  # hit, headers only
        ("GET", "/items/1", {"Authorization": "Bearer x"}),  # bypass
        ("HEAD", "/items/2", {}),  # a HEAD miss goes to the app (405: FastAPI's GET route)
        ("GET", "/plain", {}),  # no rule
    ]
    expected = [200, 200, 200, 200, 405, 200]

    async def go() -> str:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
            for (method, path, headers), status in zip(calls, expected, strict=True):
                answer = await client.request(method, path, headers=headers)
                assert answer.status_code == status
            return (await client.get("/metrics")).text

    text = asyncio.run(go())
    assert text == metrics_text(recorder, include_default=False).decode()
    if os.environ.get("OPSCOPE_REGENERATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")

"""The middleware in process: the whole /metrics exposition of a fixed FastAPI app with a
fixed clock, compared byte for byte with tests/golden/api_metrics.txt; route templates under
mounts and root_path; /metrics served or left to the app; Flask through InstrumentWSGI with
SQLAlchemy engines (psycopg counted once, sqlite through the engine's events).

After an intended change of the exposition, regenerate and review the diff:

    OPSCOPE_REGENERATE_GOLDEN=1 .venv/bin/pytest tests/test_api_instrument.py
"""

from __future__ import annotations

import asyncio
import itertools
import os
from pathlib import Path
from typing import Any

import httpx
import psycopg
from fastapi import FastAPI, HTTPException
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from conftest import SandboxDb
from opscope.api import Instrument, InstrumentWSGI
from opscope.api.exposition import metrics_text
from opscope.api.recorder import Recorder
from opscope.api.routes import UNMATCHED
from opscope.api.types import Receive, Scope, Send

GOLDEN = Path(__file__).resolve().parent / "golden" / "api_metrics.txt"


def fixed_timer() -> Any:
    """A clock that moves one millisecond each time it is read."""
    ticks = itertools.count()
    return lambda: next(ticks) / 1000


def shop(dsn: str) -> FastAPI:
    app = FastAPI()
    counter = itertools.count()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, Any]:
        return {"id": item_id, "name": f"item {item_id}"}

    @app.get("/visits")
    async def visits() -> dict[str, int]:
        return {"visits": next(counter)}

    @app.get("/orders")
    def orders() -> list[int]:
        # in the thread pool, on a connection of its own, one query per item
        with psycopg.connect(dsn) as conn:
            return [conn.execute("SELECT %s::int", (i,)).fetchone()[0] for i in range(6)]  # type: ignore[index]

    @app.get("/fail")
    async def fail() -> None:
        raise ValueError("broken")

    @app.get("/gone")
    async def gone() -> None:
        raise HTTPException(status_code=410)

    sub = FastAPI()

    @sub.get("/things/{thing}")
    async def thing(thing: str) -> dict[str, str]:
        return {"thing": thing}

    app.mount("/v1", sub)
    return app


async def _requests(app: Any, calls: list[tuple[str, str, dict[str, str]]]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        return [await client.request(m, p, headers=h) for m, p, h in calls]


def test_the_exposition_of_a_fixed_app_is_the_golden_one(db: SandboxDb) -> None:
    recorder = Recorder(wall_clock=lambda: 1_800_000_000.0)
    app = shop(db.dsn)
    app.add_middleware(Instrument, recorder=recorder, timer=fixed_timer())
    calls = [
        ("GET", "/items/1", {}),
        ("GET", "/items/1", {}),  # the same answer again
        ("GET", "/items/2?b=2&a=1", {}),
        ("GET", "/items/2?a=1&b=2", {}),  # the same request, its query in another order
        ("GET", "/visits", {}),
        ("GET", "/visits", {}),  # a different answer each time
        ("GET", "/visits", {"Authorization": "Bearer x"}),
        ("POST", "/items/1", {}),  # 405: the route matched, not the method
        ("GET", "/orders", {}),
        ("GET", "/fail", {}),
        ("GET", "/gone", {}),
        ("GET", "/v1/things/a", {}),
        ("GET", "/no/such/path", {}),
        ("BREW", "/items/1", {}),  # a method outside the list
    ]
    answers = asyncio.run(_requests(app, [*calls, ("GET", "/metrics", {})]))
    assert [r.status_code for r in answers[:-1]] == [
        200, 200, 200, 200, 200, 200, 200, 405, 200, 500, 410, 200, 404, 405,
    ]  # fmt: skip
    text = answers[-1].text
    assert answers[-1].headers["content-type"].startswith("text/plain; version=0.0.4")
    # the same text as the library gives
    assert text == metrics_text(recorder, include_default=False).decode()
    if os.environ.get("OPSCOPE_REGENERATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")


def _route_of(app: Any, path: str, root_path: str = "") -> str:
    recorder = Recorder()
    wrapped = Instrument(app, recorder=recorder, metrics_path=None)

    async def go() -> None:
        transport = httpx.ASGITransport(app=wrapped, root_path=root_path)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.get(root_path + path)

    asyncio.run(go())
    [route] = recorder.routes
    return route


async def _plain_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"static"})


def test_route_templates_under_mounts_and_root_path() -> None:
    def ok(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    inner = Starlette(routes=[Route("/reports/{year:int}", ok)])
    app = Starlette(
        routes=[
            Route("/users/{user_id}", ok),
            Mount("/tenants/{tenant}", routes=[Mount("/api", app=inner)]),
            Mount("/static", app=_plain_asgi),
        ]
    )
    assert _route_of(app, "/users/42") == "/users/{user_id}"
    assert (
        _route_of(app, "/tenants/acme/api/reports/2026")
        == "/tenants/{tenant}/api/reports/{year:int}"
    )
    assert _route_of(app, "/static/css/site.css") == "/static/{path:path}"
    assert _route_of(app, "/users/42", root_path="/gateway") == "/users/{user_id}"
    assert _route_of(app, "/nothing/here") == UNMATCHED


def test_metrics_path_is_served_unless_the_app_has_it_or_it_is_off() -> None:
    def own(request: Any) -> PlainTextResponse:
        return PlainTextResponse("the app's own metrics")

    mine = Starlette(routes=[Route("/metrics", own)])
    plain = Starlette(routes=[])
    off = Starlette(routes=[])
    mine.add_middleware(Instrument, recorder=Recorder())
    plain.add_middleware(Instrument, recorder=Recorder())
    off.add_middleware(Instrument, recorder=Recorder(), metrics_path=None)
    [a] = asyncio.run(_requests(mine, [("GET", "/metrics", {})]))
    [b] = asyncio.run(_requests(plain, [("GET", "/metrics", {})]))
    [c] = asyncio.run(_requests(off, [("GET", "/metrics", {})]))
    assert a.text == "the app's own metrics"
    assert "# TYPE http_server_request_duration_seconds histogram" in b.text
    assert c.status_code == 404


def test_flask_with_sqlalchemy_engines(db: SandboxDb, tmp_path: Path) -> None:
    from flask import Flask, jsonify
    from sqlalchemy import create_engine, text

    pg = create_engine(db.dsn.replace("postgresql://", "postgresql+psycopg://", 1))
    lite = create_engine(f"sqlite:///{tmp_path / 'lite.db'}")
    app = Flask(__name__)
    recorder = Recorder()
    app.wsgi_app = InstrumentWSGI(app.wsgi_app, recorder=recorder)  # type: ignore[method-assign]

    @app.get("/mixed/<int:n>")
    def mixed(n: int) -> Any:
        with pg.connect() as conn:
            values = [conn.execute(text("SELECT :n + 1"), {"n": i}).scalar() for i in range(3)]
        with lite.connect() as conn:
            values += [conn.execute(text("SELECT :n"), {"n": i}).scalar() for i in range(2)]
        return jsonify(values=values, n=n)

    @app.get("/boom")
    def boom() -> Any:
        raise KeyError("missing")

    # the engines' first connection asks the server about itself: not this test's queries
    for engine in (pg, lite):
        with engine.connect():
            pass
    try:
        _check_flask(app, recorder)
    finally:
        pg.dispose()
        lite.dispose()


def _check_flask(app: Any, recorder: Recorder) -> None:
    client = app.test_client()
    # buffered: the test client then closes the body, as a server does, which ends the request
    assert client.get("/mixed/7", buffered=True).json == {"values": [1, 2, 3, 0, 1], "n": 7}
    assert client.get("/boom", buffered=True).status_code == 500
    assert client.get("/nowhere", buffered=True).status_code == 404
    routes = recorder.snapshot()["routes"]
    assert set(routes) == {"/mixed/<int:n>", "/boom", UNMATCHED}
    mixed_stats = routes["/mixed/<int:n>"]
    # five queries: SQLAlchemy's psycopg dialect counted by the cursor hook alone
    assert mixed_stats["queries"][1] == 5
    texts = sorted(entry[0] for entry in mixed_stats["statements"].values())
    assert texts == ["SELECT $1 + $2", "SELECT ?"], texts
    assert mixed_stats["serialization"][1] > 0  # jsonify was timed
    assert routes["/boom"]["exceptions"] == {"KeyError": 1}

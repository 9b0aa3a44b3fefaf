"""The service's HTTP side: /metrics, health, and a JSON API with an OpenAPI schema
(/openapi.json) over findings, metric series, collectors and their runs.

Every request needs the token when `serve.token` is set (`Authorization: Bearer ...`);
without it the answer is 401. Nothing here reads a watched system: /metrics copies what the
last runs rendered, the API reads the store and the scheduler's state.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Protocol

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, StringConstraints
from starlette.types import ASGIApp, Receive, Scope, Send

from opscope import __version__
from opscope.findings import Finding, Severity
from opscope.monitor.exposition import CONTENT_TYPE, CollectorStatus, Exposition
from opscope.monitor.scheduler import Scheduler
from opscope.monitor.settings import duration_s
from opscope.monitor.store import Store, StoreError, from_ts, to_ts


class ServiceView(Protocol):
    """What the HTTP side reads of the running service."""

    scheduler: Scheduler
    store: Store | None
    exposition: Exposition

    def token(self) -> str | None: ...

    def scrape(self, gzipped: bool = False) -> bytes: ...


class Problem(BaseModel):
    detail: str


class Health(BaseModel):
    status: str = Field(description="ok while the process serves")


class Readiness(BaseModel):
    status: str = Field(description="ready, or not ready")
    store: str = Field(description="ok, or why the store cannot be reached")
    scheduler: str = Field(description="running, or not started")
    collectors: int


class CollectorOut(BaseModel):
    name: str
    kind: str
    target: str
    interval_s: float
    timeout_s: float
    runs: int = Field(description="runs since the service started")
    errors: int = Field(description="failed or timed-out runs since the service started")
    up: bool | None = Field(description="the last run succeeded; null before the first one")
    last_started: datetime | None
    last_success: datetime | None
    last_duration_s: float | None
    last_error: str | None
    running: bool


class RunOut(BaseModel):
    id: int
    collector: str
    kind: str
    target: str
    started_at: datetime
    finished_at: datetime
    ok: bool
    error: str | None
    samples: int


class SeriesOut(BaseModel):
    name: str
    labels: dict[str, str]
    type: str
    points: list[tuple[float, float]] = Field(description="[Unix time, value] pairs, oldest first")


_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "The token is missing or wrong."},
}
_BAD_INPUT: dict[int | str, dict[str, Any]] = {
    **_PROBLEMS,
    503: {"model": Problem, "description": "No store, or the store cannot be reached."},
}
_MATCH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=.*$")


def _out(s: CollectorStatus) -> CollectorOut:
    return CollectorOut(
        name=s.name,
        kind=s.kind,
        target=s.target,
        interval_s=s.interval_s,
        timeout_s=s.timeout_s,
        runs=s.runs,
        errors=s.errors,
        up=s.up,
        last_started=from_ts(s.last_started) if s.last_started is not None else None,
        last_success=from_ts(s.last_success) if s.last_success is not None else None,
        last_duration_s=s.last_duration_s,
        last_error=s.last_error,
        running=s.running,
    )


#: a moment: a duration ago (90s, 1h, 2d) or, from nine digits on, Unix seconds
MOMENT = r"^[0-9]{1,12}(\.[0-9]{1,6})?(ms|s|m|h|d|w)?$"
_LATEST_TS = 253402300799.0  # 9999-12-31


def _moment(text: str | None, now: datetime) -> datetime | None:
    """A moment given as MOMENT says; out of range, the nearest one there is."""
    if text is None:
        return None
    if re.fullmatch(r"[0-9]{9,}(\.[0-9]+)?", text):
        return from_ts(min(float(text), _LATEST_TS))
    seconds = min(duration_s(text), to_ts(now))
    return from_ts(to_ts(now) - seconds)


def create_app(service: ServiceView, clock: Callable[[], datetime]) -> ASGIApp:
    app = FastAPI(
        title="opscope serve",
        version=__version__,
        description="Findings, metric series and collector status of a running opscope.",
        responses=_PROBLEMS,
    )

    def store() -> Store:
        if service.store is None:
            raise HTTPException(503, "no history store")
        return service.store

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text"}},
        summary="Prometheus exposition of the last collection",
    )
    def metrics(request: Request) -> Response:
        if "gzip" in request.headers.get("accept-encoding", ""):
            return Response(
                service.scrape(gzipped=True),
                media_type=CONTENT_TYPE,
                headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"},
            )
        return Response(
            service.scrape(), media_type=CONTENT_TYPE, headers={"Vary": "Accept-Encoding"}
        )

    @app.get("/healthz", summary="The process serves")
    def healthz() -> Health:
        return Health(status="ok")

    @app.get(
        "/readyz",
        summary="The store is reachable and the scheduler runs",
        responses={503: {"model": Readiness, "description": "Not ready"}},
    )
    def readyz() -> Any:
        state = "ok"
        if service.store is None:
            state = "no store"
        else:
            try:
                service.store.ping()
            except Exception as exc:
                state = f"unreachable: {type(exc).__name__}"
        running = service.scheduler.started
        body = Readiness(
            status="ready" if state == "ok" and running else "not ready",
            store=state,
            scheduler="running" if running else "not started",
            collectors=len(service.scheduler.statuses()),
        )
        if body.status != "ready":
            return JSONResponse(body.model_dump(), status_code=503)
        return body

    @app.get("/api/v1/collectors", summary="Every collector and the state of its last run")
    def collectors() -> list[CollectorOut]:
        return [_out(s) for s in service.scheduler.statuses()]

    @app.get("/api/v1/runs", summary="Stored runs, newest first", responses=_BAD_INPUT)
    def list_runs(
        collector: Annotated[str | None, Query(max_length=200)] = None,
        ok: bool | None = None,
        since: Annotated[str | None, Query(pattern=MOMENT, description="1h, 2d, or Unix s")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[RunOut]:
        start = _moment(since, clock())
        found = store().runs(collector, ok=ok, since=start, limit=limit)
        return [RunOut(**vars(r)) for r in found]

    @app.get(
        "/api/v1/findings",
        summary="Findings of the latest analysis of each target",
        responses=_BAD_INPUT,
    )
    def list_findings(
        target: Annotated[str | None, Query(max_length=200)] = None,
        severity: Annotated[Severity | None, Query(description="at or above")] = None,
        check: Annotated[str | None, Query(max_length=100)] = None,
    ) -> list[Finding]:
        floor = severity
        out: list[Finding] = []
        for raw in store().current_findings():
            f = Finding.model_validate(raw)
            if target is not None and f.target != target:
                continue
            if check is not None and f.check != check:
                continue
            if floor is not None and f.severity.rank < floor.rank:
                continue
            out.append(f)
        return out

    @app.get("/api/v1/series/names", summary="Names of the stored metric series")
    def series_names() -> list[str]:
        return store().series_names()

    @app.get("/api/v1/series", summary="Points of stored metric series", responses=_BAD_INPUT)
    def list_series(
        name: Annotated[str, Query(min_length=1, max_length=200)],
        match: Annotated[
            list[Annotated[str, StringConstraints(pattern=_MATCH.pattern, max_length=400)]] | None,
            Query(description="label=value, repeatable: every one must hold"),
        ] = None,
        since: Annotated[str | None, Query(pattern=MOMENT, description="1h, 2d, or Unix s")] = None,
        until: Annotated[str | None, Query(pattern=MOMENT, description="1h, 2d, or Unix s")] = None,
    ) -> list[SeriesOut]:
        matchers: dict[str, str] = {}
        for item in match or []:
            label, _, value = item.partition("=")
            matchers[label] = value
        now = clock()
        found = store().series(name, matchers, since=_moment(since, now), until=_moment(until, now))
        return [
            SeriesOut(
                name=s.name,
                labels=s.labels,
                type=s.type,
                points=[(to_ts(at), value) for at, value in s.points],
            )
            for s in found
        ]

    @app.exception_handler(StoreError)
    def store_failed(_request: Any, exc: StoreError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    return TokenGuard(app, service.token)


class TokenGuard:
    """Pure ASGI: a request without the configured token ends in 401 before any route."""

    def __init__(self, app: ASGIApp, token: Callable[[], str | None]) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        expected = self.token() if scope["type"] == "http" else None
        if expected is not None and not _authorized(scope, expected):
            body = json.dumps({"detail": "missing or wrong token"}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"www-authenticate", b'Bearer realm="opscope"'),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def _authorized(scope: Scope, expected: str) -> bool:
    for key, value in scope.get("headers", []):
        if key == b"authorization":
            scheme, _, given = value.decode("latin-1").partition(" ")
            return scheme.lower() == "bearer" and hmac.compare_digest(
                given.strip().encode(), expected.encode()
            )
    return False

"""`opscope probe`: a load probe on httpx.

Two ways to send load:
- closed model (`-c N` alone): N clients, each sending its next request when the previous
  answer came; latency runs from the send. What wrk and hey do. When the server stalls, the
  clients stall with it and the requests they would have sent are never measured: the
  slowness hides itself ("coordinated omission").
- open model (`--rate R`): requests start on a schedule, R per second, whatever the answers
  do, and each one's latency runs from its *scheduled* start, as wrk2 measures. A request
  that had to wait (the server, or all N connections, busy) counts its wait: what a user
  arriving then would have seen. The time from the actual send is kept too, as service time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opscope.api.latency import bars, quantile
from opscope.errors import first_line
from opscope.redact import redact

if TYPE_CHECKING:
    import httpx

QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99))
DEFAULT_CONCURRENCY = 10
#: with --rate, requests in flight at most unless -c says otherwise
DEFAULT_OPEN_CONCURRENCY = 100


@dataclass(frozen=True)
class ProbePlan:
    urls: tuple[str, ...]
    concurrency: int = DEFAULT_CONCURRENCY
    requests: int | None = None
    duration_s: float | None = None
    rate: float | None = None
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    timeout_s: float = 30.0

    @property
    def open_model(self) -> bool:
        return self.rate is not None

    def planned(self) -> int | None:
        """Requests to send, when known in advance."""
        if self.requests is not None:
            return self.requests
        if self.rate is not None and self.duration_s is not None:
            return max(1, round(self.rate * self.duration_s))
        return None


@dataclass(frozen=True)
class Outcome:
    url: int
    #: when it was due (open model), else when it was sent; perf_counter seconds
    scheduled: float
    sent: float
    done: float
    status: int | None
    error: str | None = None

    @property
    def latency(self) -> float:
        return self.done - self.scheduled

    @property
    def service(self) -> float:
        return self.done - self.sent

    @property
    def failed(self) -> bool:
        return self.status is None or self.status >= 500


@dataclass
class ProbeResult:
    plan: ProbePlan
    outcomes: list[Outcome] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0


Progress = Callable[[int], None]


async def _send(
    client: httpx.AsyncClient, plan: ProbePlan, url: str, clock: Callable[[], float]
) -> tuple[float, float, int | None, str | None]:
    import httpx

    sent = clock()
    try:
        response = await client.request(
            plan.method, url, headers=list(plan.headers), content=plan.body
        )
        await response.aread()
        return sent, clock(), response.status_code, None
    except httpx.HTTPError as exc:
        return sent, clock(), None, first_line(exc) or type(exc).__name__


async def _closed(
    client: httpx.AsyncClient,
    plan: ProbePlan,
    result: ProbeResult,
    clock: Callable[[], float],
    progress: Progress,
) -> None:
    total = plan.requests
    deadline = result.started + plan.duration_s if plan.duration_s is not None else None
    counter = 0

    async def worker() -> None:
        nonlocal counter
        while True:
            if total is not None and counter >= total:
                return
            if deadline is not None and clock() >= deadline:
                return
            i = counter
            counter += 1
            url = i % len(plan.urls)
            sent, done, status, error = await _send(client, plan, plan.urls[url], clock)
            result.outcomes.append(Outcome(url, sent, sent, done, status, error))
            progress(len(result.outcomes))

    await asyncio.gather(*(worker() for _ in range(plan.concurrency)))


async def _open(
    client: httpx.AsyncClient,
    plan: ProbePlan,
    result: ProbeResult,
    clock: Callable[[], float],
    progress: Progress,
) -> None:
    assert plan.rate is not None
    gate = asyncio.Semaphore(plan.concurrency)
    interval = 1.0 / plan.rate
    total = plan.planned()
    end = result.started + plan.duration_s if plan.duration_s is not None else None

    async def one(i: int, due: float) -> None:
        async with gate:
            url = i % len(plan.urls)
            sent, done, status, error = await _send(client, plan, plan.urls[url], clock)
        result.outcomes.append(Outcome(url, due, sent, done, status, error))
        progress(len(result.outcomes))

    tasks: list[asyncio.Task[None]] = []
    i = 0
    while total is None or i < total:
        due = result.started + i * interval
        if end is not None and due >= end:
            break
        wait = due - clock()
        if wait > 0:
            await asyncio.sleep(wait)
        # late or not, it was due at `due`: that is where its latency starts
        tasks.append(asyncio.create_task(one(i, due)))
        i += 1
    await asyncio.gather(*tasks)


async def run_probe(
    plan: ProbePlan,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] = time.perf_counter,
    progress: Progress = lambda _: None,
) -> ProbeResult:
    import httpx

    limits = httpx.Limits(
        max_connections=plan.concurrency, max_keepalive_connections=plan.concurrency
    )
    async with httpx.AsyncClient(
        timeout=plan.timeout_s, limits=limits, transport=transport, follow_redirects=False
    ) as client:
        result = ProbeResult(plan)
        result.started = clock()
        if plan.open_model:
            await _open(client, plan, result, clock, progress)
        else:
            await _closed(client, plan, result, clock, progress)
        result.finished = clock()
    return result


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def latency_summary(values: Sequence[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    out: dict[str, float | None] = {name: _ms(quantile(ordered, q)) for name, q in QUANTILES}
    out["max"] = _ms(ordered[-1]) if ordered else None
    out["mean"] = _ms(sum(ordered) / len(ordered)) if ordered else None
    return out


def _stats(outcomes: Sequence[Outcome], span: float, open_model: bool) -> dict[str, Any]:
    statuses: dict[str, int] = {}
    for o in outcomes:
        key = str(o.status) if o.status is not None else "error"
        statuses[key] = statuses.get(key, 0) + 1
    failed = sum(1 for o in outcomes if o.failed)
    out: dict[str, Any] = {
        "requests": len(outcomes),
        "errors": failed,
        "error_rate": round(failed / len(outcomes), 4) if outcomes else 0.0,
        "throughput_per_s": round(len(outcomes) / span, 2) if span > 0 else None,
        "statuses": dict(sorted(statuses.items())),
        "latency_ms": latency_summary([o.latency for o in outcomes]),
    }
    if open_model:
        out["service_ms"] = latency_summary([o.service for o in outcomes])
        # started more than 1 ms after they were due: the server (or -c) could not keep up
        out["late_starts"] = sum(1 for o in outcomes if o.sent - o.scheduled > 0.001)
    return out


def summarize(result: ProbeResult) -> dict[str, Any]:
    """The probe's figures, as the report's summary holds them (milliseconds)."""
    plan = result.plan
    span = result.finished - result.started
    out: dict[str, Any] = {
        "model": "open" if plan.open_model else "closed",
        "rate_per_s": plan.rate,
        "concurrency": plan.concurrency,
        "method": plan.method,
        "elapsed_s": round(span, 3),
        **_stats(result.outcomes, span, plan.open_model),
        "histogram": [
            [round(lo * 1000, 3), round(hi * 1000, 3), n]
            for lo, hi, n, _ in bars([o.latency for o in result.outcomes], bins=12)
        ],
    }
    if len(plan.urls) > 1:
        out["urls"] = [
            {
                "url": redact(url),
                **_stats([o for o in result.outcomes if o.url == i], span, plan.open_model),
            }
            for i, url in enumerate(plan.urls)
        ]
    errors = sorted({o.error for o in result.outcomes if o.error})
    if errors:
        out["transport_errors"] = errors[:5]
    return out

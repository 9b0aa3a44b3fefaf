"""Connection pools as opscope sees them: the figures an app's /metrics carries (its
psycopg_pool and SQLAlchemy pools, exported by opscope.api's middleware), over a window or
since the app began recording, with the app's request rate and database time per request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from opscope.api.scrape import Samples, difference, fetch, parse, started_at

if TYPE_CHECKING:
    import httpx

POOL_LABEL = "db_client_connection_pool_name"


@dataclass(frozen=True)
class AppPool:
    """One pool of one app, all its processes together."""

    app: str
    name: str
    max_size: int
    used: int
    idle: int
    pending: int
    requests: float
    queued: float
    wait_s: float
    use_s: float
    timeouts: float
    processes: int
    #: seconds the counters cover
    elapsed_s: float | None
    #: the app's requests and database time over the same span (opscope.api.Instrument)
    http_requests: float
    http_db_s: float
    #: the figures are the difference of two scrapes (`--window`), not since the app started
    windowed: bool = False

    @property
    def queued_share(self) -> float:
        return self.queued / self.requests if self.requests else 0.0

    @property
    def mean_wait_ms(self) -> float | None:
        return 1000 * self.wait_s / self.queued if self.queued else None

    @property
    def hold_ms(self) -> float | None:
        """Mean time a connection is held per checkout."""
        return 1000 * self.use_s / self.requests if self.requests and self.use_s else None

    @property
    def checkout_rate(self) -> float | None:
        return self.requests / self.elapsed_s if self.elapsed_s else None

    @property
    def load(self) -> float | None:
        """Little's law: connections busy on average = checkout rate x hold time."""
        if not self.elapsed_s:
            return None
        if self.use_s:
            return self.use_s / self.elapsed_s
        # a pool that cannot time the hold: the request rate x database time per request
        return self.http_db_s / self.elapsed_s if self.http_db_s else None

    @property
    def http_load(self) -> float | None:
        """Request rate x database time per request (what the queries alone keep busy)."""
        if not self.elapsed_s or not self.http_requests:
            return None
        return (self.http_requests / self.elapsed_s) * (self.http_db_s / self.http_requests)


def _by_pool(samples: Samples, name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for (sample, pairs), value in samples.items():
        if sample != name:
            continue
        labels = dict(pairs)
        pool = labels.get(POOL_LABEL)
        if pool is not None:
            out[pool] = out.get(pool, 0.0) + value
    return out


def _by_state(samples: Samples, state: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for (sample, pairs), value in samples.items():
        labels = dict(pairs)
        if (
            sample == "db_client_connection_count"
            and labels.get("db_client_connection_state") == state
        ):
            out[labels.get(POOL_LABEL, "")] = value
    return out


def _total(samples: Samples, name: str) -> float:
    return sum(v for (sample, _), v in samples.items() if sample == name)


def pools_of(
    app: str, samples: Samples, elapsed_s: float | None, *, windowed: bool = False
) -> list[AppPool]:
    maximum = _by_pool(samples, "db_client_connection_max")
    used, idle = _by_state(samples, "used"), _by_state(samples, "idle")
    metric = {
        key: _by_pool(samples, f"db_client_connection_{key}")
        for key in ("pending_requests", "requests_total", "queued_total",
                    "wait_time_seconds_total", "use_time_seconds_total", "timeouts_total")
    }  # fmt: skip
    processes = _by_pool(samples, "opscope_db_pool_processes")
    http_requests = _total(samples, "http_server_request_duration_seconds_count")
    http_db = _total(samples, "opscope_db_time_seconds_sum")
    names = sorted(set(maximum) | set(used) | set(metric["requests_total"]))
    return [
        AppPool(
            app=app,
            name=name,
            max_size=int(maximum.get(name, 0)),
            used=int(used.get(name, 0)),
            idle=int(idle.get(name, 0)),
            pending=int(metric["pending_requests"].get(name, 0)),
            requests=metric["requests_total"].get(name, 0.0),
            queued=metric["queued_total"].get(name, 0.0),
            wait_s=metric["wait_time_seconds_total"].get(name, 0.0),
            use_s=metric["use_time_seconds_total"].get(name, 0.0),
            timeouts=metric["timeouts_total"].get(name, 0.0),
            processes=max(1, int(processes.get(name, 1))),
            elapsed_s=elapsed_s,
            http_requests=http_requests,
            http_db_s=http_db,
            windowed=windowed,
        )
        for name in names
    ]


def scrape(app: str, metrics_url: str, client: httpx.Client) -> Samples:
    """One scrape of an app's /metrics. Raises ScrapeError."""
    return parse(fetch(metrics_url, client), app)


def since_start(app: str, samples: Samples, now: float) -> list[AppPool]:
    """The pools of one scrape: everything since the app began recording."""
    start = started_at(samples)
    elapsed = now - start if start else None
    return pools_of(app, samples, elapsed if elapsed and elapsed > 0 else None)


def between(app: str, before: Samples, after: Samples, elapsed_s: float) -> list[AppPool]:
    """The pools of what happened between two scrapes `elapsed_s` apart."""
    return pools_of(app, difference(before, after), elapsed_s, windowed=True)

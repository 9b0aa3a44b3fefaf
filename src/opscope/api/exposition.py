"""/metrics: the recorder's figures as Prometheus metric families (a prometheus_client
collector, built at scrape time from the snapshots), and the exposition text.

The names follow OpenTelemetry's HTTP semantic conventions where one exists
(`http_server_request_duration_seconds`, `http_server_active_requests`) and carry opscope's
prefix otherwise; docs/api.md lists each with its labels.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from opscope.api.pools import add_figures
from opscope.api.recorder import (
    DURATION_BUCKETS,
    QUERY_BUCKETS,
    STABLE_BUCKETS,
    Recorder,
)

ROUTE = "http_route"
METHOD = "http_request_method"
STATUS = "http_response_status_code"


def _bound(value: float) -> str:
    """A bucket bound as Go (and Prometheus) writes it: +Inf, 0.005, 1.0."""
    return "+Inf" if value == float("inf") else repr(float(value))


def _buckets(bounds: tuple[float, ...], counts: list[int]) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    total = 0
    for bound, count in zip((*bounds, float("inf")), counts, strict=True):
        total += count
        out.append((_bound(bound), total))
    return out


def _add(into: list[Any], other: list[Any]) -> None:
    """Sum a dumped histogram ([counts, sum]) into another."""
    counts, total = other
    into[0] = [a + b for a, b in zip(into[0], counts, strict=True)]
    into[1] += total


def merge(snapshots: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """One snapshot that sums several processes' (max for the largest repeat count)."""
    series: dict[tuple[str, str, int], list[Any]] = {}
    routes: dict[str, dict[str, Any]] = {}
    active: dict[tuple[str, str], int] = {}
    cache: dict[str, list[int]] = {}
    pools: dict[str, dict[str, Any]] = {}
    started: float | None = None
    for snap in snapshots:
        for route, counts in snap.get("cache", {}).items():
            mine_cache = cache.setdefault(route, [0] * len(counts))
            cache[route] = [a + b for a, b in zip(mine_cache, counts, strict=True)]
        for name, figures in snap.get("pools", {}).items():
            if name in pools:
                add_figures(pools[name], figures)
            else:
                pools[name] = dict(figures)
        started = snap["started"] if started is None else min(started, snap["started"])
        for route, method, status, counts, total in snap["series"]:
            key = (route, method, int(status))
            if key in series:
                _add(series[key], [counts, total])
            else:
                series[key] = [list(counts), float(total)]
        for route, stats in snap["routes"].items():
            mine = routes.get(route)
            if mine is None:
                routes[route] = {
                    **stats,
                    "db": [list(stats["db"][0]), stats["db"][1]],
                    "queries": [list(stats["queries"][0]), stats["queries"][1]],
                    "serialization": [
                        list(stats["serialization"][0]),
                        stats["serialization"][1],
                    ],
                    "stable": [list(stats["stable"][0]), stats["stable"][1]],
                    "statements": {fp: list(v) for fp, v in stats["statements"].items()},
                    "exceptions": dict(stats["exceptions"]),
                    "responses": list(stats["responses"]),
                }
                continue
            for name in ("db", "queries", "serialization", "stable"):
                _add(mine[name], stats[name])
            mine["n_plus_one"] += stats["n_plus_one"]
            mine["connects"] += stats["connects"]
            mine["responses"] = [
                a + b for a, b in zip(mine["responses"], stats["responses"], strict=True)
            ]
            for err, n in stats["exceptions"].items():
                mine["exceptions"][err] = mine["exceptions"].get(err, 0) + n
            for fp, (text, calls, seconds, flagged, most) in stats["statements"].items():
                entry = mine["statements"].setdefault(fp, [text, 0, 0.0, 0, 0])
                entry[1] += calls
                entry[2] += seconds
                entry[3] += flagged
                entry[4] = max(entry[4], most)
        for route, method, n in snap["active"]:
            active[(route, method)] = active.get((route, method), 0) + n
    return {
        "started": started,
        "series": [[*key, *value] for key, value in sorted(series.items())],
        "routes": dict(sorted(routes.items())),
        "active": [[*key, n] for key, n in sorted(active.items())],
        "cache": dict(sorted(cache.items())),
        "pools": dict(sorted(pools.items())),
    }


def families(snapshot: dict[str, Any]) -> Iterator[Metric]:
    """The metric families of a (merged) snapshot, in a fixed order."""
    duration = HistogramMetricFamily(
        "http_server_request_duration_seconds",
        "Duration of HTTP server requests, by route template, method and status code.",
        labels=[ROUTE, METHOD, STATUS],
    )
    for route, method, status, counts, total in snapshot["series"]:
        duration.add_metric([route, method, str(status)], _buckets(DURATION_BUCKETS, counts), total)
    yield duration

    active = GaugeMetricFamily(
        "http_server_active_requests",
        "Requests being served, by route template (once routed) and method.",
        labels=[ROUTE, METHOD],
    )
    for route, method, n in snapshot["active"]:
        active.add_metric([route, method], n)
    yield active

    routes: dict[str, dict[str, Any]] = snapshot["routes"]
    per_route = [
        ("opscope_db_time_seconds", "db", DURATION_BUCKETS,
         "Time spent in database queries per request."),
        ("opscope_db_queries_per_request", "queries", QUERY_BUCKETS,
         "Database queries run per request."),
        ("opscope_serialization_seconds", "serialization", DURATION_BUCKETS,
         "Time spent turning the handler's return value into the response body, per request."),
    ]  # fmt: skip
    for name, key, bounds, doc in per_route:
        hist = HistogramMetricFamily(name, doc, labels=[ROUTE])
        for route, stats in routes.items():
            counts, total = stats[key]
            hist.add_metric([route], _buckets(bounds, counts), total)
        yield hist

    n_plus_one = CounterMetricFamily(
        "opscope_n_plus_one_total",
        "Requests in which one statement ran N times or more (N+1 queries).",
        labels=[ROUTE],
    )
    for route, stats in routes.items():
        n_plus_one.add_metric([route], stats["n_plus_one"])
    yield n_plus_one

    connects = CounterMetricFamily(
        "opscope_db_connections_opened_total",
        "Database connections the requests opened themselves (psycopg.connect, not a pool).",
        labels=[ROUTE],
    )
    for route, stats in routes.items():
        if stats["connects"]:
            connects.add_metric([route], stats["connects"])
    yield connects

    labels = [ROUTE, "db_statement_fingerprint", "db_statement"]
    calls = CounterMetricFamily(
        "opscope_db_statement_calls_total",
        "Executions of each statement, by route (normalized text, capped per route).",
        labels=labels,
    )
    seconds = CounterMetricFamily(
        "opscope_db_statement_seconds_total",
        "Time in each statement, by route.",
        labels=labels,
    )
    repeated = CounterMetricFamily(
        "opscope_n_plus_one_statement_total",
        "Requests in which this statement ran N times or more.",
        labels=labels,
    )
    most = GaugeMetricFamily(
        "opscope_n_plus_one_statement_max_repeats",
        "The most times this statement ran in one request.",
        labels=labels,
    )
    for route, stats in routes.items():
        for fp, (text, n, secs, flagged, top) in sorted(stats["statements"].items()):
            values = [route, fp, text]
            calls.add_metric(values, n)
            seconds.add_metric(values, secs)
            if flagged:
                repeated.add_metric(values, flagged)
                most.add_metric(values, top)
    yield from (calls, seconds, repeated, most)

    errors = CounterMetricFamily(
        "opscope_unhandled_exceptions_total",
        "Exceptions that escaped the handler, by route and type.",
        labels=[ROUTE, "error_type"],
    )
    for route, stats in routes.items():
        for err, n in sorted(stats["exceptions"].items()):
            errors.add_metric([route, err], n)
    yield errors

    # the body-digest figures exist for routes that answered GETs (the cache analysis)
    followed = {r: s for r, s in routes.items() if s["responses"][3] or s["responses"][2]}
    docs = (
        ("opscope_response_repeats_total",
         "GET/HEAD 2xx answers to a request (path, query, varied headers) answered before."),
        ("opscope_response_changes_total",
         "Of those, answers whose body differed from the previous answer to that request."),
        ("opscope_response_private_total",
         "GET/HEAD requests with Authorization or Cookie, or answered with Set-Cookie."),
    )  # fmt: skip
    for i, (name, doc) in enumerate(docs):
        counter = CounterMetricFamily(name, doc, labels=[ROUTE])
        for route, stats in followed.items():
            counter.add_metric([route], stats["responses"][i])
        yield counter
    keys = GaugeMetricFamily(
        "opscope_response_keys",
        "Distinct GET/HEAD requests whose answers are followed.",
        labels=[ROUTE],
    )
    for route, stats in followed.items():
        keys.add_metric([route], stats["responses"][3])
    yield keys
    stable = HistogramMetricFamily(
        "opscope_response_stable_seconds",
        "How long an answer to a repeated GET stayed the same, observed when it changed.",
        labels=[ROUTE],
    )
    for route, stats in followed.items():
        counts, total = stats["stable"]
        if any(counts):
            stable.add_metric([route], _buckets(STABLE_BUCKETS, counts), total)
    yield stable

    yield from _cache_families(snapshot.get("cache", {}))
    yield from pool_families(snapshot.get("pools", {}))

    start = GaugeMetricFamily(
        "opscope_instrument_start_time_seconds",
        "When the earliest process of the app began recording (Unix time).",
    )
    if snapshot["started"] is not None:
        start.add_metric([], snapshot["started"])
    yield start


_CACHE_DOCS = (
    ("opscope_cache_hits_total", "Requests answered from the response cache (fresh)."),
    ("opscope_cache_misses_total", "Handler calls the response cache made to fill an entry."),
    ("opscope_cache_stale_total",
     "Requests answered with a stale entry while it was refreshed (stale-while-revalidate)."),
    ("opscope_cache_bypasses_total",
     "Requests to a cached route that were not looked up (credentials, Range)."),
    ("opscope_cache_errors_total",
     "Requests the cache let through to the handler because its backend failed."),
)  # fmt: skip


def _cache_families(cache: dict[str, list[int]]) -> Iterator[Metric]:
    """The response cache's figures, for apps that have one (none otherwise)."""
    if not cache:
        return
    for i, (name, doc) in enumerate(_CACHE_DOCS):
        counter = CounterMetricFamily(name, doc, labels=[ROUTE])
        for route, counts in cache.items():
            counter.add_metric([route], counts[i])
        yield counter
    ratio = GaugeMetricFamily(
        "opscope_cache_hit_ratio",
        "Share of cache look-ups answered from the cache (fresh or stale) since the start.",
        labels=[ROUTE],
    )
    for route, (hits, misses, stale, _, _) in cache.items():
        lookups = hits + misses + stale
        if lookups:
            ratio.add_metric([route], (hits + stale) / lookups)
    yield ratio


POOL = "db_client_connection_pool_name"

#: (name, type, figure, help) of the pool metrics, OpenTelemetry's db.client.connection.*
#: where it has one
_POOL_METRICS = (
    ("db_client_connection_max", "gauge", "max",
     "The most connections the pool may open (all processes)."),
    ("db_client_connection_pending_requests", "gauge", "pending",
     "Requests waiting for a connection now."),
    ("db_client_connection_requests_total", "counter", "requests",
     "Connections asked of the pool (checkouts)."),
    ("db_client_connection_queued_total", "counter", "queued",
     "Checkouts that found no free connection and waited."),
    ("db_client_connection_wait_time_seconds_total", "counter", "wait_s",
     "Time spent waiting for a connection."),
    ("db_client_connection_use_time_seconds_total", "counter", "use_s",
     "Time connections were held between checkout and return."),
    ("db_client_connection_timeouts_total", "counter", "timeouts",
     "Checkouts that gave up (timeout, too many waiting)."),
    ("opscope_db_pool_processes", "gauge", "processes",
     "Processes that have this pool (each has its own connections)."),
)  # fmt: skip


def pool_families(pools: dict[str, dict[str, Any]]) -> Iterator[Metric]:
    """The connection pools' figures; nothing when the app has none."""
    if not pools:
        return
    count = GaugeMetricFamily(
        "db_client_connection_count",
        "Connections open in the pool, by state (used: checked out; idle).",
        labels=[POOL, "db_client_connection_state"],
    )
    for name, figures in pools.items():
        count.add_metric([name, "idle"], figures.get("idle", 0))
        count.add_metric([name, "used"], figures.get("used", 0))
    yield count
    for metric, kind, key, doc in _POOL_METRICS:
        family: GaugeMetricFamily | CounterMetricFamily
        if kind == "gauge":
            family = GaugeMetricFamily(metric, doc, labels=[POOL])
        else:
            family = CounterMetricFamily(metric.removesuffix("_total"), doc, labels=[POOL])
        for name, figures in pools.items():
            family.add_metric([name], figures.get(key, 0))
        yield family


class RecorderCollector:
    """prometheus_client's one-method protocol: `collect()` at each scrape."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def collect(self) -> Iterator[Metric]:
        yield from families(merge(self.recorder.merged_snapshots()))

    def describe(self) -> Iterator[Metric]:
        # the names, for the registry's duplicate check, without reading any figure
        yield from families(merge([]))


_registered: set[int] = set()


def metrics_text(recorder: Recorder, *, include_default: bool) -> bytes:
    """The exposition for /metrics. With `include_default` (the process's default recorder),
    prometheus_client's default registry comes along (process metrics, the app's own
    metrics) — or, in multiprocess mode, its multiprocess collector, as its docs ask."""
    if not include_default:
        registry = CollectorRegistry(auto_describe=True)
        registry.register(RecorderCollector(recorder))
        return generate_latest(registry)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(RecorderCollector(recorder))
        return generate_latest(registry)
    register_default(recorder)
    return generate_latest(REGISTRY)


def register_default(recorder: Recorder) -> None:
    """Put the recorder's figures in prometheus_client's default registry (once), so an
    app's own /metrics route built on it shows them too."""
    if id(recorder) not in _registered:
        _registered.add(id(recorder))
        REGISTRY.register(RecorderCollector(recorder))

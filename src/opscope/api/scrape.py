"""Reading an instrumented app's /metrics: the text, parsed with prometheus_client's parser,
into samples; two scrapes into what happened between them; samples into endpoints."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from prometheus_client.parser import text_string_to_metric_families

from opscope.api.endpoints import Endpoint, Latency, Statement
from opscope.errors import first_line
from opscope.redact import redact

if TYPE_CHECKING:
    import httpx

#: (sample name, sorted label pairs) -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

_MAX_BYTES = 64 << 20


class ScrapeError(Exception):
    """The metrics URL could not be read or is not Prometheus text; one line."""


def fetch(url: str, client: httpx.Client) -> str:
    import httpx

    try:
        response = client.get(url)
    except httpx.HTTPError as exc:
        raise ScrapeError(
            f"cannot read {redact(url)}: {redact(first_line(exc)) or type(exc).__name__}"
        ) from None
    if response.status_code != 200:
        raise ScrapeError(f"{redact(url)} answered HTTP {response.status_code}")
    if len(response.content) > _MAX_BYTES:
        raise ScrapeError(f"{redact(url)} returned more than {_MAX_BYTES >> 20} MiB")
    return response.text


def parse(text: str, source: str = "metrics") -> Samples:
    out: Samples = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                out[key] = float(sample.value)
    except ValueError as exc:
        raise ScrapeError(f"{source} is not Prometheus text: {first_line(exc)}") from None
    return out


#: samples that are gauges: their later value stands, they are not differences
_GAUGES = ("http_server_active_requests", "opscope_n_plus_one_statement_max_repeats",
           "opscope_response_keys", "opscope_instrument_start_time_seconds",
           "opscope_cache_hit_ratio",
           "db_client_connection_count", "db_client_connection_max",
           "db_client_connection_pending_requests", "opscope_db_pool_processes")  # fmt: skip

_RESPONSES = {
    "opscope_response_repeats_total": "repeats",
    "opscope_response_changes_total": "changes",
    "opscope_response_private_total": "private",
    "opscope_response_keys": "keys",
}
_CACHE = {
    f"opscope_cache_{event}_total": event
    for event in ("hits", "misses", "stale", "bypasses", "errors")
}


def difference(before: Samples, after: Samples) -> Samples:
    """What the counters did between two scrapes. A series that went down was reset (the app
    restarted): its later value is what happened since."""
    out: Samples = {}
    for key, value in after.items():
        if key[0] in _GAUGES:
            out[key] = value
            continue
        prev = before.get(key, 0.0)
        out[key] = value - prev if value >= prev else value
    return out


def _labels(pairs: tuple[tuple[str, str], ...]) -> dict[str, str]:
    return dict(pairs)


def endpoints(samples: Samples) -> dict[str, Endpoint]:
    """Endpoints by route template from the middleware's samples."""
    found: dict[str, Endpoint] = {}

    def ep(route: str) -> Endpoint:
        if route not in found:
            found[route] = Endpoint(route=route)
        return found[route]

    buckets: dict[str, dict[float, float]] = {}
    stable: dict[str, dict[float, float]] = {}
    statements: dict[tuple[str, str], dict[str, object]] = {}
    for (name, pairs), value in samples.items():
        labels = _labels(pairs)
        route = labels.get("http_route")
        if route is None:
            continue
        if name == "http_server_request_duration_seconds_count":
            e = ep(route)
            e.requests += value
            status = labels.get("http_response_status_code", "")
            e.statuses[status] = e.statuses.get(status, 0.0) + value
            if status.startswith("5"):
                e.errors += value
            if value:
                e.methods.add(labels.get("http_request_method", ""))
            if labels.get("http_request_method") in ("GET", "HEAD"):
                e.reads += value
                if status.startswith("2"):
                    e.reads_ok += value
        elif name == "http_server_request_duration_seconds_sum":
            e = ep(route)
            e.duration_s = (e.duration_s or 0.0) + value
        elif name == "http_server_request_duration_seconds_bucket":
            le = float(labels["le"])
            per = buckets.setdefault(route, {})
            per[le] = per.get(le, 0.0) + value
        elif name == "opscope_db_time_seconds_sum":
            ep(route).db_s = value
        elif name == "opscope_db_queries_per_request_sum":
            ep(route).queries = value
        elif name == "opscope_serialization_seconds_sum":
            ep(route).serialization_s = value
        elif name == "opscope_db_connections_opened_total":
            ep(route).connects = value
        elif name == "opscope_n_plus_one_total":
            ep(route).n_plus_one = value
        elif name == "opscope_unhandled_exceptions_total":
            if value:
                ep(route).exceptions[labels.get("error_type", "")] = value
        elif name in _RESPONSES:
            setattr(ep(route), _RESPONSES[name], value)
        elif name == "opscope_response_stable_seconds_bucket":
            le = float(labels["le"])
            per = stable.setdefault(route, {})
            per[le] = per.get(le, 0.0) + value
        elif name in _CACHE:
            e = ep(route)
            e.cache = e.cache if e.cache is not None else {}
            e.cache[_CACHE[name]] = value
        elif name.startswith(("opscope_db_statement_", "opscope_n_plus_one_statement_")):
            key = (route, labels.get("db_statement_fingerprint", ""))
            entry = statements.setdefault(key, {"text": labels.get("db_statement", "")})
            entry[name] = value
    for route, per in buckets.items():
        bounds = sorted(b for b in per if not math.isinf(b))
        cumulative = [per[b] for b in bounds] + [per.get(math.inf, 0.0)]
        ep(route).latency = Latency(bounds=tuple(bounds), cumulative=cumulative)
    for route, per in stable.items():
        bounds = sorted(b for b in per if not math.isinf(b))
        cumulative = [per[b] for b in bounds] + [per.get(math.inf, 0.0)]
        ep(route).stable = Latency(bounds=tuple(bounds), cumulative=cumulative)
    for (route, fp), entry in statements.items():
        calls = _num(entry, "opscope_db_statement_calls_total")
        if not calls:
            continue
        ep(route).statements.append(
            Statement(
                fingerprint=fp,
                text=str(entry["text"]),
                calls=calls,
                seconds=_num(entry, "opscope_db_statement_seconds_total"),
                n_plus_one_requests=_num(entry, "opscope_n_plus_one_statement_total"),
                max_repeats=_num(entry, "opscope_n_plus_one_statement_max_repeats"),
            )
        )
    for e in found.values():
        # answers followed for the cache analysis: the digest figures start from zero
        if e.repeats is None and e.keys is not None:
            e.repeats = 0.0
        if e.repeats is not None:
            e.changes = e.changes or 0.0
            e.private = e.private or 0.0
            e.keys = e.keys or 0.0
    # a cache rule whose template no request label shares still shows its counts
    return {route: e for route, e in sorted(found.items()) if e.requests > 0 or e.cache_lookups > 0}


def _num(entry: Mapping[str, object], key: str) -> float:
    value = entry.get(key, 0.0)
    return float(value) if isinstance(value, int | float) else 0.0


def started_at(samples: Samples) -> float | None:
    for (name, _), value in samples.items():
        if name == "opscope_instrument_start_time_seconds":
            return value
    return None

"""What the analysis reads about each endpoint, whatever the source: a /metrics scrape of the
middleware (everything), or access logs (requests, statuses, latency when the format has
it). A figure the source cannot give is None, and the checks that need it stay silent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from opscope.api.latency import LogHistogram, bucket_quantile


@dataclass(frozen=True)
class Statement:
    fingerprint: str
    text: str
    calls: float
    seconds: float
    #: requests in which it ran N times or more, and the most times in one request
    n_plus_one_requests: float = 0.0
    max_repeats: float = 0.0


@dataclass
class Latency:
    """Latency of an endpoint: Prometheus buckets (bounds, cumulative counts) or a log-scale
    histogram of samples."""

    bounds: tuple[float, ...] = ()
    cumulative: list[float] = field(default_factory=list)
    samples: LogHistogram | None = None

    def quantile(self, q: float) -> float | None:
        if self.samples is not None:
            return self.samples.quantile(q)
        return bucket_quantile(self.bounds, self.cumulative, q)


@dataclass
class Endpoint:
    route: str
    requests: float = 0.0
    #: responses with a 5xx status
    errors: float = 0.0
    statuses: dict[str, float] = field(default_factory=dict)
    methods: set[str] = field(default_factory=set)
    #: total seconds spent answering; None when the source has no latency
    duration_s: float | None = None
    latency: Latency | None = None
    db_s: float | None = None
    queries: float | None = None
    serialization_s: float | None = None
    n_plus_one: float | None = None
    #: connections the requests opened themselves
    connects: float | None = None
    statements: list[Statement] = field(default_factory=list)
    exceptions: dict[str, float] = field(default_factory=dict)
    #: GET and HEAD requests, and those answered with a 2xx
    reads: float = 0.0
    reads_ok: float = 0.0
    #: for the cache analysis, from the body digests (metrics) or the repeated request
    #: targets (access logs): 2xx answers to a request answered before, those whose body
    #: differed from the previous answer (None from logs), requests with credentials (None
    #: from logs) and distinct requests followed; None when the source has no such figure
    repeats: float | None = None
    changes: float | None = None
    private: float | None = None
    keys: float | None = None
    #: how long answers stayed the same, seconds (buckets of opscope_response_stable_seconds)
    stable: Latency | None = None
    #: the response cache's counts: hits, misses, stale, bypasses, errors (None: no cache)
    cache: dict[str, float] | None = None

    def quantile_ms(self, q: float) -> float | None:
        if self.latency is None:
            return None
        value = self.latency.quantile(q)
        return None if value is None else value * 1000

    @property
    def mean_ms(self) -> float | None:
        if self.duration_s is None or not self.requests:
            return None
        return self.duration_s / self.requests * 1000

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def repeat_share(self) -> float | None:
        """Of the requests followed, the share that repeated one answered before."""
        if self.repeats is None:
            return None
        followed = self.repeats + (self.keys or 0.0)
        return self.repeats / followed if followed else None

    @property
    def cache_lookups(self) -> float:
        c = self.cache or {}
        return c.get("hits", 0.0) + c.get("misses", 0.0) + c.get("stale", 0.0)

    @property
    def cache_hit_ratio(self) -> float | None:
        lookups = self.cache_lookups
        if not lookups or self.cache is None:
            return None
        return (self.cache.get("hits", 0.0) + self.cache.get("stale", 0.0)) / lookups

    def top_statements(self, n: int = 3) -> Sequence[Statement]:
        return sorted(self.statements, key=lambda s: -s.seconds)[:n]

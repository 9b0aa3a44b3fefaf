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

    def top_statements(self, n: int = 3) -> Sequence[Statement]:
        return sorted(self.statements, key=lambda s: -s.seconds)[:n]

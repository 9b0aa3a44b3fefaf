"""/metrics: the text exposition of the last collection of every collector, and the
service's own metrics about its collectors.

What the collectors read, and the collectors' status, are rendered once when a run ends and
kept as bytes (plain and gzipped): a scrape never queries a watched system, it copies them.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Families:
    """A registry-shaped holder, so prometheus_client renders our families as it renders
    its own (one implementation of the text format, tested by its authors)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


def merge(families: Iterable[Metric]) -> list[Metric]:
    """Families of one name from several collectors made one (a name's HELP and TYPE appear
    once in an exposition). A family whose type differs from the first one of its name is
    left out, and its name returned in the `conflicts` of `render`."""
    merged: dict[str, Metric] = {}
    for family in families:
        present = merged.get(family.name)
        if present is None:
            copy = Metric(family.name, family.documentation, family.type, family.unit)
            copy.samples = list(family.samples)
            merged[family.name] = copy
        elif present.type == family.type:
            present.samples.extend(family.samples)
    return [merged[name] for name in sorted(merged)]


def render(families: Iterable[Metric]) -> bytes:
    return generate_latest(_Families(merge(families)))


@dataclass(frozen=True)
class CollectorStatus:
    """What the service knows of one collector, for /metrics and the JSON API."""

    name: str
    kind: str
    target: str
    interval_s: float
    timeout_s: float
    runs: int
    errors: int
    up: bool | None
    last_started: float | None
    last_success: float | None
    last_duration_s: float | None
    last_error: str | None
    running: bool


def status_families(
    statuses: Sequence[CollectorStatus], store_errors: int, build: Mapping[str, str]
) -> list[Metric]:
    labels = ["collector", "kind", "target"]
    up = GaugeMetricFamily(
        "opscope_collector_up",
        "1 when the collector's last run succeeded, 0 when it failed or timed out.",
        labels=labels,
    )
    errors = CounterMetricFamily(
        "opscope_collector_errors",
        "Runs of the collector that failed or timed out since the service started.",
        labels=labels,
    )
    total = CounterMetricFamily(
        "opscope_collector_runs", "Runs of the collector since the service started.", labels=labels
    )
    duration = GaugeMetricFamily(
        "opscope_collector_duration_seconds", "How long the last run took.", labels=labels
    )
    success = GaugeMetricFamily(
        "opscope_collector_last_success_timestamp_seconds",
        "When the last successful run started (Unix time).",
        labels=labels,
    )
    interval = GaugeMetricFamily(
        "opscope_collector_interval_seconds", "The collector's schedule.", labels=labels
    )
    for s in statuses:
        values = [s.name, s.kind, s.target]
        if s.up is not None:
            up.add_metric(values, 1.0 if s.up else 0.0)
        errors.add_metric(values, float(s.errors))
        total.add_metric(values, float(s.runs))
        interval.add_metric(values, s.interval_s)
        if s.last_duration_s is not None:
            duration.add_metric(values, s.last_duration_s)
        if s.last_success is not None:
            success.add_metric(values, s.last_success)
    store = CounterMetricFamily(
        "opscope_store_errors", "Runs whose data the history store could not keep."
    )
    store.add_metric([], float(store_errors))
    info = GaugeMetricFamily("opscope_build_info", "The running opscope.", labels=sorted(build))
    info.add_metric([build[k] for k in sorted(build)], 1.0)
    return [up, errors, total, duration, success, interval, store, info]


class Exposition:
    """The latest families of each collector and the collectors' status, rendered (and
    gzipped, for scrapers that accept it) once per change: a scrape only copies bytes."""

    def __init__(self, status: Callable[[], Sequence[Metric]] = list) -> None:
        # updates are serialized (each renders everything); a scrape only reads the bytes
        self._lock = threading.Lock()
        self._status = status
        self._by_collector: dict[str, list[Metric]] = {}
        self._text = b""
        self._gzipped = gzip.compress(b"", mtime=0)

    def update(
        self, collector: str | None = None, families: Sequence[Metric] | None = None
    ) -> None:
        """Replace what `collector` exposes (None: nothing, e.g. once it is removed), and
        render again with the current status."""
        with self._lock:
            if collector is not None:
                if families is None:
                    self._by_collector.pop(collector, None)
                else:
                    self._by_collector[collector] = list(families)
            every = [f for name in sorted(self._by_collector) for f in self._by_collector[name]]
            text = render([*every, *self._status()])
            # level 1: a few milliseconds per megabyte, and still a tenth of the size
            self._gzipped = gzip.compress(text, compresslevel=1, mtime=0)
            self._text = text

    def collectors(self) -> list[str]:
        with self._lock:
            return sorted(self._by_collector)

    def keep_only(self, names: Iterable[str]) -> None:
        wanted = set(names)
        for name in self.collectors():
            if name not in wanted:
                self.update(name, None)
        self.update()

    def scrape(self, gzipped: bool = False) -> bytes:
        return self._gzipped if gzipped else self._text

"""What `opscope serve` reads from each API: its /metrics, scraped on a schedule and exposed
again with a `target` label (as Prometheus federation would), and `analyze_api` for its
findings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from opscope.api.analyze import analyze_api
from opscope.api.context import KIND
from opscope.api.scrape import ScrapeError, fetch
from opscope.api.settings import API, apis
from opscope.config import Config
from opscope.errors import first_line
from opscope.findings import Report
from opscope.monitor.collector import CollectContext, Collection, CollectorError
from opscope.redact import redact

if TYPE_CHECKING:
    pass


def relabel(text: str, target: str, source: str) -> list[Metric]:
    """The families of an exposition, each sample with `target` added (an app's own
    `target` label is kept as `exported_target`, as Prometheus does)."""
    out: list[Metric] = []
    try:
        for family in text_string_to_metric_families(text):
            copy = Metric(family.name, family.documentation, family.type, family.unit)
            for s in family.samples:
                labels = dict(s.labels)
                if "target" in labels:
                    labels["exported_target"] = labels.pop("target")
                labels["target"] = target
                copy.samples.append(Sample(s.name, labels, s.value, None, s.exemplar))
            out.append(copy)
    except ValueError as exc:
        raise CollectorError(f"{source} is not Prometheus text: {first_line(exc)}") from None
    return out


@dataclass
class ApiCollector:
    config: Config
    target: str
    metrics_url: str
    kind: str = KIND
    interval_s: float = 60.0
    timeout_s: float = 30.0
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = f"{KIND}/{self.target}"

    def collect(self, context: CollectContext) -> Collection:
        import httpx

        timeout = min(API.of(self.config).timeout_s, self.timeout_s)
        shown = redact(self.metrics_url)
        with httpx.Client(timeout=timeout) as client:
            try:
                text = fetch(self.metrics_url, client)
            except ScrapeError as exc:
                raise CollectorError(str(exc)) from None
        return Collection(metrics=relabel(text, self.target, shown), taken_at=context.clock())


@dataclass
class ApiAnalysis:
    config: Config
    target: str
    kind: str = KIND
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = f"{KIND}/{self.target}"

    def run(self, context: CollectContext) -> Report:
        return analyze_api(self.config, name=self.target, clock=context.clock)


def collectors(config: Config) -> list[ApiCollector]:
    return [
        ApiCollector(config, name, target.metrics_url)
        for name, target in apis(config).items()
        if target.metrics_url
    ]


def analyses(config: Config) -> list[ApiAnalysis]:
    return [
        ApiAnalysis(config, name)
        for name, target in apis(config).items()
        if target.metrics_url or target.access_logs
    ]

"""The resources area in the service and in `opscope check`: the host, its process groups,
pools and uptime probes, analyzed on the service's schedule (opscope.monitor's Analysis
protocol)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from opscope.config import Config
from opscope.findings import Report
from opscope.monitor.collector import CollectContext
from opscope.resources.analyze import analyze_resources
from opscope.resources.context import KIND


@dataclass
class ResourcesAnalysis:
    config: Config
    #: this host: what the report is about
    target: str = field(default_factory=socket.gethostname)
    kind: str = KIND
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = f"{KIND}/{self.target}"

    def run(self, context: CollectContext) -> Report:
        return analyze_resources(self.config, clock=context.clock)


def analyses(config: Config) -> list[ResourcesAnalysis]:
    """One, when the config says what to watch (services, or resources beyond the host)."""
    watched = config.sections.get("services") is not None or (
        config.sections.get("resources") is not None
    )
    return [ResourcesAnalysis(config)] if watched else []

"""The pipelines area in the service and in `opscope check`: one analysis per Airflow
deployment under `airflow:` (opscope.monitor's Analysis protocol)."""

from __future__ import annotations

from dataclasses import dataclass, field

from opscope.config import Config
from opscope.dags.analyze import analyze_dags
from opscope.dags.context import KIND
from opscope.dags.settings import airflow_targets
from opscope.dags.source import target_source
from opscope.findings import Report
from opscope.monitor.collector import CollectContext


@dataclass
class DagsAnalysis:
    config: Config
    target: str
    kind: str = KIND
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = f"{KIND}/{self.target}"

    def run(self, context: CollectContext) -> Report:
        source = target_source(airflow_targets(self.config)[self.target])
        return analyze_dags(self.config, source, name=self.target, clock=context.clock)


def analyses(config: Config) -> list[DagsAnalysis]:
    return [DagsAnalysis(config, name) for name in airflow_targets(config)]

"""The PostgreSQL area's collectors and analyses, one of each per database in the config."""

from __future__ import annotations

from dataclasses import dataclass, field

from opscope.config import Config
from opscope.db.analyze import analyze_database
from opscope.db.context import KIND
from opscope.db.monitor.collector import PostgresCollector
from opscope.db.settings import databases
from opscope.findings import Report
from opscope.monitor.collector import CollectContext


@dataclass
class DatabaseAnalysis:
    """`analyze_database` on one configured database; with the service's store, index
    usage is judged over the whole window opscope has observed."""

    config: Config
    target: str
    dsn: str
    kind: str = KIND
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = f"{KIND}/{self.target}"

    def run(self, context: CollectContext) -> Report:
        return analyze_database(
            self.config, self.dsn, name=self.target, history=context.history, clock=context.clock
        )


def collectors(config: Config) -> list[PostgresCollector]:
    return [
        PostgresCollector(config, name, target.dsn) for name, target in databases(config).items()
    ]


def analyses(config: Config) -> list[DatabaseAnalysis]:
    return [
        DatabaseAnalysis(config, name, target.dsn) for name, target in databases(config).items()
    ]

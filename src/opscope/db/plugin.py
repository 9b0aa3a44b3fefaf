"""The PostgreSQL area, registered through opscope's plugin hooks exactly as a third-party
plugin would be (entry point `opscope.plugins: postgresql` in pyproject.toml)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opscope.checks import Check
from opscope.config import Config, ConfigSection
from opscope.db.advisor.command import advise_command
from opscope.db.checks import CHECKS
from opscope.db.command import analyze_db_command
from opscope.db.logs.command import logs_command
from opscope.db.logs.findings import CHECKS as LOG_CHECKS
from opscope.db.logs.maintenance_findings import CHECKS as MAINTENANCE_CHECKS
from opscope.db.logs.maintenance_render import MaintenanceSection
from opscope.db.logs.render import LogSection
from opscope.db.monitor.analysis import DatabaseAnalysis, analyses, collectors
from opscope.db.monitor.collector import PostgresCollector
from opscope.db.plans.command import explain_command
from opscope.db.sections import DatabaseSection
from opscope.db.settings import DATABASES, POSTGRESQL
from opscope.plugins import CommandSet, Section


def register_checks() -> Iterable[Check]:
    checks: list[Check] = [*CHECKS, *LOG_CHECKS, *MAINTENANCE_CHECKS]
    return checks


def register_commands(cli: CommandSet) -> None:
    cli.add("db", analyze_db_command, group="analyze")
    cli.add("explain", explain_command)
    cli.group("indexes", "Index advice from the workload in pg_stat_statements.")
    cli.add("advise", advise_command, group="indexes")
    cli.add("logs", logs_command)


def register_sections() -> Iterable[Section]:
    return [DatabaseSection(), LogSection(), MaintenanceSection()]


def register_config() -> Iterable[ConfigSection[Any]]:
    return [DATABASES, POSTGRESQL]


def register_collectors(config: Config) -> Iterable[PostgresCollector]:
    return collectors(config)


def register_analyses(config: Config) -> Iterable[DatabaseAnalysis]:
    return analyses(config)

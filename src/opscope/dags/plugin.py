"""The pipeline area, registered through opscope's plugin hooks exactly as a third-party
plugin would be (entry point `opscope.plugins: dags` in pyproject.toml)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opscope.checks import Check
from opscope.config import Config, ConfigSection
from opscope.dags.checks import CHECKS
from opscope.dags.collect import DagsAnalysis, analyses
from opscope.dags.collector import DagsCollector, collectors
from opscope.dags.command import analyze_dags_command, simulate_command
from opscope.dags.sections import DagsSection
from opscope.dags.settings import AIRFLOW, DAGS
from opscope.plugins import CommandSet, Section


def register_checks() -> Iterable[Check]:
    checks: list[Check] = list(CHECKS)
    return checks


def register_commands(cli: CommandSet) -> None:
    cli.add("dags", analyze_dags_command, group="analyze")
    cli.group("dags", "Pipelines: what-if replays of Airflow DAG runs.")
    cli.add("simulate", simulate_command, group="dags")


def register_sections() -> Iterable[Section]:
    return [DagsSection()]


def register_config() -> Iterable[ConfigSection[Any]]:
    return [AIRFLOW, DAGS]


def register_collectors(config: Config) -> Iterable[DagsCollector]:
    return collectors(config)


def register_analyses(config: Config) -> Iterable[DagsAnalysis]:
    return analyses(config)

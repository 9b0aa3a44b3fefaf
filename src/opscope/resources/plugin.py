"""The resources area (host, processes, connection pools, uptime), registered through
opscope's plugin hooks like any plugin (entry point `opscope.plugins: resources`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opscope.checks import Check
from opscope.config import Config, ConfigSection
from opscope.plugins import CommandSet, Section
from opscope.resources.checks import CHECKS
from opscope.resources.collect import ResourcesAnalysis, analyses
from opscope.resources.collector import HostCollector, ProbeCollector, collectors
from opscope.resources.command import analyze_resources_command
from opscope.resources.sections import ResourcesSection
from opscope.resources.settings import RESOURCES, SERVICES


def register_checks() -> Iterable[Check]:
    return list(CHECKS)


def register_commands(cli: CommandSet) -> None:
    cli.add("resources", analyze_resources_command, group="analyze")


def register_sections() -> Iterable[Section]:
    return [ResourcesSection()]


def register_config() -> Iterable[ConfigSection[Any]]:
    return [SERVICES, RESOURCES]


def register_collectors(config: Config) -> Iterable[HostCollector | ProbeCollector]:
    return collectors(config)


def register_analyses(config: Config) -> Iterable[ResourcesAnalysis]:
    return analyses(config)

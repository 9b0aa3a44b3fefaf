"""The web API area, registered through opscope's plugin hooks like any plugin (entry point
`opscope.plugins: api` in pyproject.toml)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opscope.api.cachechecks import CACHE_CHECKS
from opscope.api.cachecommand import invalidate_command
from opscope.api.checks import CHECKS
from opscope.api.collect import ApiAnalysis, ApiCollector, analyses, collectors
from opscope.api.command import analyze_api_command, probe_command
from opscope.api.sections import ApiSection, ProbeSection
from opscope.api.settings import API, APIS
from opscope.checks import Check
from opscope.config import Config, ConfigSection
from opscope.plugins import CommandSet, Section


def register_checks() -> Iterable[Check]:
    return [*CHECKS, *CACHE_CHECKS]


def register_commands(cli: CommandSet) -> None:
    cli.add("api", analyze_api_command, group="analyze")
    cli.add("probe", probe_command)
    cli.group("cache", "The response cache (opscope.api.ResponseCache): invalidate entries.")
    cli.add("invalidate", invalidate_command, group="cache")


def register_sections() -> Iterable[Section]:
    return [ApiSection(), ProbeSection()]


def register_config() -> Iterable[ConfigSection[Any]]:
    return [APIS, API]


def register_collectors(config: Config) -> Iterable[ApiCollector]:
    return collectors(config)


def register_analyses(config: Config) -> Iterable[ApiAnalysis]:
    return analyses(config)

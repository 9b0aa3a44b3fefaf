"""The service, registered through the plugin hooks like an area: its `serve` config and
the `serve` and `check` commands. It names no area: collectors and analyses come from the
areas' own hooks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opscope.config import ConfigSection
from opscope.monitor.command import check_command, serve_command
from opscope.monitor.settings import SERVE
from opscope.plugins import CommandSet


def register_commands(cli: CommandSet) -> None:
    cli.add("serve", serve_command)
    cli.add("check", check_command)


def register_config() -> Iterable[ConfigSection[Any]]:
    return [SERVE]

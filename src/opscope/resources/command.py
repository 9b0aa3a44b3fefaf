"""`opscope analyze resources`."""

from __future__ import annotations

from typing import Annotated

import typer

from opscope.cli_common import (
    ConfigOpt,
    FailOnOpt,
    FormatOpt,
    OutputOpt,
    check_output_options,
    emit,
    fail,
    load_or_fail,
    parse_duration,
    say,
)
from opscope.resources.analyze import PARTS, analyze_resources


def analyze_resources_command(
    metrics_url: Annotated[
        list[str] | None,
        typer.Option(
            "--metrics-url",
            help="An app's /metrics (opscope.api.Instrument) whose connection pools to read "
            "(repeatable; adds to resources.pools and the APIs in the config).",
            show_default=False,
        ),
    ] = None,
    window: Annotated[
        str | None,
        typer.Option(
            "--window",
            help="Measure over this long (e.g. 30s): CPU, disk growth, and the pools between "
            "two scrapes.",
            show_default=False,
        ),
    ] = None,
    only_part: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help=f"Run only this part: {', '.join(PARTS)} (repeatable).",
            show_default=False,
        ),
    ] = None,
    check: Annotated[
        list[str] | None,
        typer.Option("--check", help="Run only this check (repeatable).", show_default=False),
    ] = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    fail_on: FailOnOpt = None,
) -> None:
    """Host, process groups, disks, connection pools and uptime: CPU, memory, disks filling,
    pools that make requests wait (with their size from Little's law), services down and
    certificates expiring."""
    check_output_options(fmt, output, fail_on)
    cfg = load_or_fail(config)
    window_s = parse_duration(window, "--window") if window else None
    if window_s is not None and window_s <= 0:
        fail("--window must be more than 0")
    urls = list(metrics_url or [])
    for url in urls:
        if not url.startswith(("http://", "https://")):
            fail(f"--metrics-url {url!r} is not an http:// or https:// URL")
    parts = list(only_part or PARTS)
    for part in parts:
        if part not in PARTS:
            fail(f"unknown part {part!r} for --only (expected one of: {', '.join(PARTS)})")
    try:
        report = analyze_resources(
            cfg, metrics_urls=urls, window_s=window_s, parts=parts, only=check, echo=say
        )
    except ValueError as exc:
        fail(str(exc))
    emit(report, fmt, output, fail_on)

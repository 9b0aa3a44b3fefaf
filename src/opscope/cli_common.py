"""What every `opscope` command shares: failing in one line, writing reports atomically,
rendering and exit codes, and the common options. Areas' command modules import from here,
so they never import the app module itself."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from opscope.atomic import write_atomic
from opscope.config import Config, ConfigError, load_config
from opscope.display import visible
from opscope.findings import Report, Severity
from opscope.plugins import default_plugins
from opscope.redact import redact
from opscope.report import format_for, render

USAGE_ERROR = 2


def say(line: str) -> None:
    """A line to stderr (progress, the statements `--apply` runs, warnings): passwords
    removed, control characters made visible, as in every report."""
    typer.echo(visible(redact(line)), err=True)


def fail(message: str) -> NoReturn:
    say(f"opscope: error: {message}")
    raise typer.Exit(USAGE_ERROR)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


def parse_duration(text: str, what: str) -> float:
    """'5m', '30s', '1h', '500ms' or plain seconds -> seconds."""
    m = _DURATION.match(text)
    if not m:
        raise typer.BadParameter(f"{text!r} is not a duration (like 30s, 5m, 1h)", param_hint=what)
    value = float(m.group(1))
    factor = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
    return value * factor


def write_output(text: str, output: Path | None) -> None:
    """Write next to the destination, then rename: a failed run never leaves half a report."""
    if output is None:
        sys.stdout.write(text)
        return
    if output.exists() and not output.is_file():
        # /dev/stdout, a FIFO, a terminal: write through it; renaming over it would replace
        # the device node itself
        try:
            with output.open("w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror}")
        return
    try:
        write_atomic(output, text)
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")


def check_output_options(fmt: str | None, output: Path | None, fail_on: str | None) -> None:
    """Reject a bad --format or --fail-on before any work is done, not after it."""
    try:
        format_for(output, fmt)
        if fail_on:
            Severity.parse(fail_on)
    except ValueError as exc:
        fail(str(exc))


def emit(report: Report, fmt: str | None, output: Path | None, fail_on: str | None) -> None:
    try:
        threshold = Severity.parse(fail_on) if fail_on else None
        chosen = format_for(output, fmt)
    except ValueError as exc:
        fail(str(exc))
    color = output is None and chosen == "terminal" and sys.stdout.isatty()
    write_output(render(report, chosen, color=color), output)
    if output is not None:
        say(f"report written to {output}")
    if report.fails(threshold):
        raise typer.Exit(1)


def load_or_fail(config_path: Path | None) -> Config:
    """The config every command reads, validated against the installed areas' sections."""
    try:
        return load_config(config_path, default_plugins().config)
    except ConfigError as exc:
        fail(str(exc))


ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="opscope.yaml to read (default: $OPSCOPE_CONFIG, then ./opscope.yaml).",
        show_default=False,
    ),
]
FormatOpt = Annotated[
    str | None,
    typer.Option(
        "--format",
        "-f",
        help="terminal, json, markdown or html (default: from --output's suffix, else terminal).",
        show_default=False,
    ),
]
OutputOpt = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Write the report to this file.", show_default=False),
]
FailOnOpt = Annotated[
    str | None,
    typer.Option(
        "--fail-on",
        help="Exit 1 when a finding at or above this severity (critical, warning, info) exists.",
        show_default=False,
    ),
]

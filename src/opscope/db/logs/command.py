"""`opscope logs FILE...`: slow-query analysis of PostgreSQL server logs."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from opscope.db.logs.options import FORMATS, LogOptions
from opscope.findings import Report, Severity

USAGE_ERROR = 2
_OUTPUT_FORMATS = ("terminal", "json", "markdown", "html")
_SUFFIXES = {".json": "json", ".md": "markdown", ".html": "html", ".htm": "html"}


def _fail(message: str) -> NoReturn:
    typer.echo(f"opscope: error: {message}", err=True)
    raise typer.Exit(USAGE_ERROR)


def _moment(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        _fail(f"{option}: {text!r} is not a time (like 2024-05-01 13:00 or 2024-05-01T13:00Z)")


def render_report(report: Report, fmt: str, *, color: bool = False) -> str:
    from opscope.db.logs.render import render_log_markdown, render_log_terminal, report_json

    if fmt == "json":
        return report_json(report)
    if fmt == "terminal":
        return render_log_terminal(report, color=color)
    render: Callable[..., str] | None
    try:
        from opscope.report import render as generic_render

        render = generic_render
    except ImportError:  # the generic renderers are optional for this command
        render = None
    if fmt == "markdown":
        head = render(report, "markdown") if render is not None else ""
        return head + "\n" + render_log_markdown(report)
    if render is not None:
        return render(report, "html")
    from html import escape

    return (
        "<!doctype html><meta charset=utf-8><pre>"
        + escape(render_log_terminal(report))
        + "</pre>\n"
    )


def _write(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    directory = output.parent if str(output.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{output.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, output)
    except OSError as exc:
        _fail(f"cannot write {output}: {exc.strerror or exc}")


def logs_command(
    files: Annotated[
        list[str],
        typer.Argument(
            help="Log files (plain, .gz, .bz2, .xz, .zst; '-' reads stdin), oldest first.",
            show_default=False,
        ),
    ],
    prefix: Annotated[
        str | None,
        typer.Option(
            "--prefix", help="The server's log_line_prefix (default: detected).", show_default=False
        ),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option(
            "--log-format",
            help="stderr, csvlog, jsonlog or syslog (default: detected).",
            show_default=False,
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Only entries at or after this time (ISO 8601).", show_default=False
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until", help="Only entries at or before this time (ISO 8601).", show_default=False
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option("--db", help="Only this database.", show_default=False),
    ] = None,
    user: Annotated[
        str | None,
        typer.Option("--user", help="Only this user.", show_default=False),
    ] = None,
    min_duration: Annotated[
        float,
        typer.Option(
            "--min-duration", help="Count only executions at least this slow (ms).", min=0
        ),
    ] = 0.0,
    slow: Annotated[
        float,
        typer.Option(
            "--slow", help="An execution this slow (ms) makes a slow_query finding.", min=0
        ),
    ] = 1000.0,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", "-f", help="terminal, json, markdown or html.", show_default=False
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the report to this file.", show_default=False),
    ] = None,
    fail_on: Annotated[
        str | None,
        typer.Option(
            "--fail-on",
            help="Exit 1 when a finding at or above this severity exists.",
            show_default=False,
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            help="Worker processes (default: all cores for big input).",
            min=1,
            show_default=False,
        ),
    ] = None,
    top: Annotated[int, typer.Option("--top", help="Length of the top lists.", min=1)] = 20,
) -> None:
    """Slow-query analysis of PostgreSQL server logs: top statements, slowest executions
    with their parameters, errors, temp files and lock waits."""
    from opscope.db.logs.analyze import analyze_logs
    from opscope.db.logs.prefix import PrefixError, compile_prefix
    from opscope.db.logs.reader import LogInputError

    if fmt is None:
        fmt = _SUFFIXES.get(output.suffix.lower(), "terminal") if output else "terminal"
    if fmt not in _OUTPUT_FORMATS:
        _fail(f"unknown format {fmt!r} (expected one of: {', '.join(_OUTPUT_FORMATS)})")
    if log_format is not None and log_format not in FORMATS:
        _fail(f"unknown log format {log_format!r} (expected one of: {', '.join(FORMATS)})")
    try:
        threshold = Severity.parse(fail_on) if fail_on else None
    except ValueError as exc:
        _fail(str(exc))
    if files.count("-") > 1:
        _fail("stdin ('-') can be read only once")
    for path in files:
        if path != "-" and not os.path.isfile(path):
            _fail(f"{path}: no such file" if not os.path.exists(path) else f"{path}: not a file")
    if prefix is not None:
        try:
            compile_prefix(prefix)
        except PrefixError as exc:
            _fail(str(exc))
    options = LogOptions(
        prefix=prefix,
        log_format=log_format,
        since=_moment(since, "--since"),
        until=_moment(until, "--until"),
        database=db,
        user=user,
        min_duration_ms=min_duration,
        slow_ms=slow,
        jobs=jobs,
        top=top,
    )
    try:
        report = analyze_logs(files, options)
    except LogInputError as exc:
        _fail(str(exc))
    color = output is None and fmt == "terminal" and sys.stdout.isatty()
    _write(render_report(report, fmt, color=color), output)
    if output is not None:
        typer.echo(f"report written to {output}", err=True)
    if report.fails(threshold):
        raise typer.Exit(1)

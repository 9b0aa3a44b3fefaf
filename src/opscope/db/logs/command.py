"""`opscope logs FILE...`: slow-query analysis of PostgreSQL server logs."""

from __future__ import annotations

import os
import re
from datetime import datetime
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
)
from opscope.db.logs.analyze import analyze_logs
from opscope.db.logs.options import FORMATS, log_options
from opscope.db.logs.prefix import PrefixError, compile_prefix
from opscope.db.logs.reader import LogInputError

#: below this a prefix and the start of a message may not fit; above, one entry alone
#: would take more memory than a machine running PostgreSQL can spare
MIN_ENTRY_BYTES = 4096
MAX_ENTRY_BYTES = 1 << 30
_SIZE = re.compile(r"(\d+)\s*(?:([kmg])(?:i?b)?|b)?", re.IGNORECASE)


def _size(text: str, option: str) -> int:
    """`1048576`, `512k`, `4M`, `4MiB`, `1G`: bytes, the suffixes powers of 1024."""
    m = _SIZE.fullmatch(text.strip())
    if m is None:
        fail(f"{option}: {text!r} is not a size (like 1048576, 512k, 4M)")
    value = int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[(m.group(2) or "").lower()]
    if not MIN_ENTRY_BYTES <= value <= MAX_ENTRY_BYTES:
        fail(f"{option}: {text!r} is not between 4k ({MIN_ENTRY_BYTES} bytes) and 1G")
    return value


def _moment(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        fail(f"{option}: {text!r} is not a time (like 2024-05-01 13:00 or 2024-05-01T13:00Z)")


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
            help="stderr, csvlog, jsonlog, syslog, or a service's: cloudsql (and AlloyDB), "
            "heroku, cnpg (CloudNativePG), azure; or pgbouncer (default: detected).",
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
        float | None,
        typer.Option(
            "--slow",
            help="An execution this slow (ms) makes a slow_query finding "
            "(default: postgresql.thresholds.slow_query_ms, 1000).",
            min=0,
            show_default=False,
        ),
    ] = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    fail_on: FailOnOpt = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            help="Worker processes (default: postgresql.logs.jobs, else all cores for big input).",
            min=1,
            show_default=False,
        ),
    ] = None,
    top: Annotated[
        int | None,
        typer.Option(
            "--top",
            help="Length of the top lists (default: postgresql.logs.top, 20).",
            min=1,
            show_default=False,
        ),
    ] = None,
    max_entry_bytes: Annotated[
        str | None,
        typer.Option(
            "--max-entry-bytes",
            help="Longest entry kept (bytes; k, M, G suffixes): a longer stderr entry is cut, "
            "a longer csvlog/jsonlog record left out, and both counted. Bounds memory "
            "(default: postgresql.logs.max_entry_bytes, 1M).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Slow-query analysis of PostgreSQL server logs.

    Top statements, the slowest executions with their parameters, errors, temp files and
    lock waits, from stderr, csvlog, jsonlog or syslog files, compressed or not.
    """
    check_output_options(fmt, output, fail_on)
    cfg = load_or_fail(config)
    if log_format is not None and log_format not in FORMATS:
        fail(f"unknown log format {log_format!r} (expected one of: {', '.join(FORMATS)})")
    if files.count("-") > 1:
        fail("stdin ('-') can be read only once")
    for path in files:
        # Pipes and character devices are logs too (<(zcat …), /dev/stdin): only a
        # directory or a missing path is refused here.
        if path != "-" and (not os.path.exists(path) or os.path.isdir(path)):
            fail(f"{path}: no such file" if not os.path.exists(path) else f"{path}: not a file")
    if prefix is not None:
        try:
            compile_prefix(prefix)
        except PrefixError as exc:
            fail(str(exc))
    given = {
        "slow_ms": slow,
        "jobs": jobs,
        "top": top,
        "max_entry_bytes": _size(max_entry_bytes, "--max-entry-bytes") if max_entry_bytes else None,
    }
    options = log_options(
        cfg,
        **{key: value for key, value in given.items() if value is not None},
        prefix=prefix,
        log_format=log_format,
        since=_moment(since, "--since"),
        until=_moment(until, "--until"),
        database=db,
        user=user,
        min_duration_ms=min_duration,
    )
    try:
        report = analyze_logs(cfg, files, options)
    except LogInputError as exc:  # LogWorkerError, a dead worker, among them
        fail(str(exc))
    except MemoryError:
        fail("out of memory reading the logs: retry with --jobs 1 or a lower --max-entry-bytes")
    emit(report, fmt, output, fail_on)

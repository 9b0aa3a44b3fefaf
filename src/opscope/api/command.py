"""`opscope analyze api` and `opscope probe`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from opscope.api.analyze import analyze_api
from opscope.api.probe import (
    DEFAULT_CONCURRENCY,
    DEFAULT_OPEN_CONCURRENCY,
    ProbePlan,
    ProbeResult,
    run_probe,
    summarize,
)
from opscope.api.scrape import ScrapeError
from opscope.api.sections import PROBE_KIND
from opscope.api.settings import LOG_FORMATS, apis
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
from opscope.config import Config
from opscope.db.logs.reader import LogInputError
from opscope.findings import Report, Target
from opscope.redact import redact


def analyze_api_command(
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            help="APIs named in the config (default: every API there, unless --metrics-url "
            "or --access-log is given).",
            show_default=False,
        ),
    ] = None,
    metrics_url: Annotated[
        str | None,
        typer.Option(
            "--metrics-url", help="The app's /metrics (opscope.api.Instrument).", show_default=False
        ),
    ] = None,
    access_log: Annotated[
        list[Path] | None,
        typer.Option(
            "--access-log",
            help="An access log (repeatable; .gz etc. read too).",
            show_default=False,
        ),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option(
            "--log-format", help=f"{', '.join(LOG_FORMATS)} (default: auto).", show_default=False
        ),
    ] = None,
    window: Annotated[
        str | None,
        typer.Option(
            "--window",
            help="Scrape twice this far apart (e.g. 1m) and report only what happened in between.",
            show_default=False,
        ),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            help="The database the API queries (a name under "
            "databases: or a DSN): links the index advisor's indexes to routes.",
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
    """Web API report: slow endpoints, database-heavy ones, N+1 queries, heavy serialization,
    high error rates."""
    check_output_options(fmt, output, fail_on)
    cfg = load_or_fail(config)
    window_s = parse_duration(window, "--window") if window else None
    if log_format is not None and log_format not in LOG_FORMATS:
        fail(f"unknown log format {log_format!r} (expected one of: {', '.join(LOG_FORMATS)})")
    if metrics_url is not None and not metrics_url.startswith(("http://", "https://")):
        fail("--metrics-url must be an http:// or https:// URL")
    logs = [str(p) for p in access_log or []]
    configured = apis(cfg)
    names: list[str | None]
    if targets:
        unknown = [t for t in targets if t not in configured]
        if unknown:
            where = f" in {cfg.source}" if cfg.source else ""
            fail(f"no API named {unknown[0]!r}{where}")
        names = list(targets)
    elif metrics_url or logs:
        names = [None]
    else:
        names = list(configured)
    if not names:
        fail("no API given: pass --metrics-url or --access-log, or name APIs in opscope.yaml")
    report = Report()
    for name in names:
        try:
            report.extend(
                analyze_api(
                    cfg,
                    name=name,
                    metrics_url=metrics_url,
                    access_logs=logs,
                    log_format=log_format,
                    window_s=window_s,
                    database=database,
                    only=check,
                    echo=say,
                )
            )
        except (ScrapeError, LogInputError, ValueError) as exc:
            fail(str(exc))
    emit(report, fmt, output, fail_on)


def resolve_url(item: str, cfg: Config) -> str:
    """A URL, or `NAME` / `NAME/path` of an API whose base_url is in the config."""
    if "://" in item:
        return item
    head, _, rest = item.partition("/")
    target = apis(cfg).get(head)
    if target is None or not target.base_url:
        fail(f"{item!r} is neither a URL nor an API with a base_url in the config")
    return target.base_url.rstrip("/") + "/" + rest


def probe_command(
    urls: Annotated[
        list[str],
        typer.Argument(
            help="URLs to probe, taken in turn (or NAME/path of a configured API).",
            show_default=False,
        ),
    ],
    concurrency: Annotated[
        int | None,
        typer.Option(
            "-c",
            "--concurrency",
            min=1,
            max=10_000,
            show_default=False,
            help=f"Clients (default {DEFAULT_CONCURRENCY}); with --rate, the most "
            f"requests in flight (default {DEFAULT_OPEN_CONCURRENCY}).",
        ),
    ] = None,
    requests: Annotated[
        int | None,
        typer.Option(
            "-n",
            "--requests",
            min=1,
            max=10_000_000,
            show_default=False,
            help="Requests to send (default 200, or 10 s with --rate).",
        ),
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option("-d", "--duration", help="Send for this long (e.g. 30s).", show_default=False),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate",
            min=0.01,
            max=1_000_000,
            show_default=False,
            help="Requests per second on a schedule (open model; latency from the "
            "scheduled start, corrected for coordinated omission).",
        ),
    ] = None,
    method: Annotated[str, typer.Option("-X", "--method", help="HTTP method.")] = "GET",
    header: Annotated[
        list[str] | None,
        typer.Option("-H", "--header", help="'Name: value' (repeatable).", show_default=False),
    ] = None,
    timeout: Annotated[
        str, typer.Option("--timeout", help="Give up on a request after this long.")
    ] = "30s",
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="opscope.yaml to read (default: $OPSCOPE_CONFIG, then ./opscope.yaml).",
            show_default=False,
        ),
    ] = None,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
) -> None:
    """Load probe: latency percentiles, error rate, throughput and a latency histogram."""
    check_output_options(fmt, output, None)
    cfg = load_or_fail(config)
    if requests is not None and duration is not None:
        fail("give -n or -d, not both")
    duration_s = parse_duration(duration, "--duration") if duration else None
    if duration_s is not None and duration_s <= 0:
        fail("--duration must be more than 0")
    if requests is None and duration_s is None:
        if rate is None:
            requests = 200
        else:
            duration_s = 10.0
    headers: list[tuple[str, str]] = []
    for h in header or []:
        name, sep, value = h.partition(":")
        if not sep or not name.strip():
            fail(f"header {h!r} is not 'Name: value'")
        headers.append((name.strip(), value.strip()))
    targets = tuple(resolve_url(u, cfg) for u in urls)
    for url in targets:
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            fail(f"{url!r} is not an http:// or https:// URL")
    plan = ProbePlan(
        urls=targets,
        concurrency=concurrency
        or (DEFAULT_OPEN_CONCURRENCY if rate is not None else DEFAULT_CONCURRENCY),
        requests=requests,
        duration_s=duration_s,
        rate=rate,
        method=method.upper(),
        headers=tuple(headers),
        timeout_s=parse_duration(timeout, "--timeout"),
    )
    result = asyncio.run(_run_with_progress(plan))
    name = redact(targets[0]) if len(targets) == 1 else f"{len(targets)} URLs"
    report = Report(targets=[Target(kind=PROBE_KIND, name=name)], summary={name: summarize(result)})
    emit(report, fmt, output, None)


async def _run_with_progress(plan: ProbePlan) -> ProbeResult:
    if not sys.stderr.isatty():
        return await run_probe(plan)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    total = plan.planned()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("probing", total=total)
        return await run_probe(plan, progress=lambda done: bar.update(task, completed=done))

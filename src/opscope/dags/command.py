"""`opscope analyze dags` and `opscope dags simulate`: parse, call the library, render."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated
from urllib.parse import unquote, urlsplit, urlunsplit

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from opscope.checks import CheckFailed
from opscope.cli_common import (
    USAGE_ERROR,
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
    write_output,
)
from opscope.config import Config
from opscope.dags.analyze import NoRunsError, analyze_dags, simulate_dag
from opscope.dags.readers.importer import ImportFormatError
from opscope.dags.readers.metadata import AirflowSchemaError
from opscope.dags.readers.rest import RestError
from opscope.dags.settings import airflow_targets
from opscope.dags.simulate import Simulation, TaskTime, WhatIf
from opscope.dags.source import DB, IMPORT, URL, DagSource, target_source
from opscope.dags.timefmt import seconds_text
from opscope.db.connection import TargetConnectionError
from opscope.display import visible
from opscope.findings import CheckError, Report
from opscope.redact import redact

#: where a token for --airflow-url is read from (never from the command line, which every
#: user of the machine can see)
TOKEN_ENV = "OPSCOPE_AIRFLOW_TOKEN"

SOURCE_ERRORS = (
    TargetConnectionError,
    RestError,
    ImportFormatError,
    AirflowSchemaError,
    CheckFailed,
    NoRunsError,
)


def url_source(url: str) -> DagSource:
    """An API URL from the command line: user name and password may be in it (then taken
    out of it), the token comes from $OPSCOPE_AIRFLOW_TOKEN."""
    if not url.startswith(("http://", "https://")):
        fail("--airflow-url: expected an http:// or https:// URL")
    parts = urlsplit(url)
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    return DagSource(URL, bare, os.environ.get(TOKEN_ENV) or None, username, password)


def resolve_sources(
    cfg: Config,
    names: list[str] | None,
    airflow_db: str | None,
    airflow_url: str | None,
    import_file: Path | None,
) -> list[tuple[str | None, DagSource]]:
    """(config name or None, source) of each deployment the command reads."""
    given = [x for x in (airflow_db, airflow_url, import_file) if x is not None]
    if len(given) > 1:
        fail("give one of --airflow-db, --airflow-url and --import")
    if given and names:
        fail("give either deployment names from the config or a source option, not both")
    if airflow_db is not None:
        if not airflow_db.startswith(("postgresql://", "postgres://")) and "=" not in airflow_db:
            fail("--airflow-db: expected a postgresql:// URL or a key=value connection string")
        return [(None, DagSource(DB, airflow_db))]
    if airflow_url is not None:
        return [(None, url_source(airflow_url))]
    if import_file is not None:
        return [(None, DagSource(IMPORT, str(import_file)))]
    targets = airflow_targets(cfg)
    chosen = names or list(targets)
    if not chosen:
        fail(
            "no Airflow given: pass --airflow-db DSN, --airflow-url URL or --import FILE, "
            "or name deployments under airflow: in opscope.yaml"
        )
    out: list[tuple[str | None, DagSource]] = []
    for name in chosen:
        if name not in targets:
            where = f" in {cfg.source}" if cfg.source else ""
            shown = "the argument" if "@" in name or ":" in name else repr(name)
            fail(f"{shown} is not a deployment named under airflow:{where}")
        out.append((name, target_source(targets[name])))
    return out


_AGO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*d\s*$")


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """'7d', '12h', '30m' ago, or an ISO 8601 date or time (UTC when it has no offset)."""
    now = now or datetime.now(UTC)
    days = _AGO.match(text)
    if days:
        return now - timedelta(days=float(days.group(1)))
    try:
        return now - timedelta(seconds=parse_duration(text, "--since"))
    except typer.BadParameter:
        pass
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        fail(f"--since: {text!r} is neither a time ago (7d, 12h) nor an ISO date")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@contextmanager
def progress_bar(what: str) -> Iterator[Callable[[int, int | None], None] | None]:
    """A progress bar on stderr for long reads, when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield None
        return
    console = Console(stderr=True)
    with Progress(
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("runs"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(what, total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield update


SourceArgs = Annotated[
    list[str] | None,
    typer.Argument(
        help="Deployments named under airflow: in the config; default: all of them.",
        show_default=False,
    ),
]
AirflowDbOpt = Annotated[
    str | None,
    typer.Option(
        "--airflow-db",
        help="The Airflow metadata database (postgresql://...), read in read-only sessions.",
        show_default=False,
    ),
]
AirflowUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--airflow-url",
        help=f"The Airflow API server, http:// or https://, with user:password@ before the "
        f"host for basic auth or a token; or a token in ${TOKEN_ENV}.",
        show_default=False,
    ),
]
ImportOpt = Annotated[
    Path | None,
    typer.Option(
        "--import",
        help="Task runs of any orchestrator as JSON or CSV (docs/dags.md).",
        show_default=False,
    ),
]
DagOpt = Annotated[
    list[str] | None,
    typer.Option("--dag", help="Only this DAG (repeatable).", show_default=False),
]
SinceOpt = Annotated[
    str | None,
    typer.Option(
        "--since", help="Only runs since then: 7d, 12h, or an ISO date.", show_default=False
    ),
]


def analyze_dags_command(
    targets: SourceArgs = None,
    airflow_db: AirflowDbOpt = None,
    airflow_url: AirflowUrlOpt = None,
    import_file: ImportOpt = None,
    dag: DagOpt = None,
    since: SinceOpt = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    fail_on: FailOnOpt = None,
    check: Annotated[
        list[str] | None,
        typer.Option("--check", help="Run only this check (repeatable).", show_default=False),
    ] = None,
) -> None:
    """Pipeline performance: slow DAGs and tasks, critical paths, parallelism, waits, retries,
    failures."""
    check_output_options(fmt, output, fail_on)
    cfg = load_or_fail(config)
    when = parse_since(since) if since else None
    sources = resolve_sources(cfg, targets, airflow_db, airflow_url, import_file)
    report = Report()
    unreachable = False
    for name, source in sources:
        label = name or source.default_name()
        try:
            with progress_bar(f"reading {label}") as progress:
                report.extend(
                    analyze_dags(
                        cfg,
                        source,
                        name=name,
                        dags=dag,
                        since=when,
                        only=check,
                        progress=progress,
                    )
                )
        except ValueError as exc:
            fail(str(exc))
        except SOURCE_ERRORS as exc:
            if len(sources) == 1:
                fail(redact(str(exc)))
            unreachable = True
            say(f"opscope: error: {exc}")
            report.errors.append(
                CheckError(check="connection", message=redact(str(exc)), target=label)
            )
    emit(report, fmt, output, fail_on)
    if unreachable:
        raise typer.Exit(USAGE_ERROR)


def parse_task_time(text: str) -> tuple[str, TaskTime]:
    """T=DURATION (30s, 5m, 1.5h, 500ms, plain seconds) or T=PERCENT% of what it took."""
    task, sep, value = text.partition("=")
    if not sep or not task.strip() or not value.strip():
        fail(f"--task: expected TASK=DURATION (like load=30s or load=50%), got {text!r}")
    value = value.strip()
    if value.endswith("%"):
        try:
            percent = float(value[:-1])
        except ValueError:
            fail(f"--task: {value!r} is not a percentage")
        if percent < 0:
            fail("--task: a percentage must not be negative")
        return task.strip(), TaskTime(factor=percent / 100)
    try:
        return task.strip(), TaskTime(seconds=parse_duration(value, "--task"))
    except typer.BadParameter:
        fail(f"--task: {value!r} is not a duration (like 30s, 5m, 1h) or a percentage")


def parse_edge(text: str) -> tuple[str, str]:
    a, sep, b = text.partition(">")
    if not sep or not a.strip() or not b.strip():
        fail(f"--drop-edge: expected UPSTREAM>DOWNSTREAM, got {text!r}")
    return a.strip(), b.strip()


def simulation_text(sim: Simulation) -> str:
    w = sim.what_if
    changes = []
    if w.slots is not None:
        changes.append(f"{w.slots} slot(s)")
    changes += [f"{t} at {c.describe()}" for t, c in sorted(w.tasks.items())]
    changes += [f"without {a}>{b}" for a, b in sorted(w.dropped)]
    lines = [
        f"{sim.dag_id}: {len(sim.runs)} recent successful run(s) replayed by a list scheduler",
        f"  Airflow took (median)         {seconds_text(sim.actual):>12}",
        f"  replayed as they ran          {seconds_text(sim.baseline):>12}   "
        "(each run on the slots it used; the difference is scheduling overhead)",
    ]
    if changes:
        speed = f"   ({sim.speedup:.2f}x)" if sim.speedup else ""
        lines.append(f"  with {', '.join(changes)}")
        lines.append(f"  expected duration             {seconds_text(sim.expected):>12}{speed}")
    lines.append("")
    lines.append(f"  {'run':<44} {'airflow':>10} {'replay':>10} {'what-if':>10} {'slots':>5}")
    for r in sim.runs:
        run_id = visible(r.run_id)
        run_id = run_id if len(run_id) <= 44 else run_id[:43] + "…"
        lines.append(
            f"  {run_id:<44} {seconds_text(r.actual):>10} {seconds_text(r.baseline):>10} "
            f"{seconds_text(r.expected):>10} {r.slots:>5}"
        )
    return "\n".join(lines) + "\n"


def simulation_json(sim: Simulation) -> str:
    data = {
        "dag_id": sim.dag_id,
        "what_if": {
            "slots": sim.what_if.slots,
            "tasks": {
                t: {"seconds": c.seconds, "factor": c.factor}
                for t, c in sorted(sim.what_if.tasks.items())
            },
            "dropped_edges": [list(e) for e in sorted(sim.what_if.dropped)],
        },
        "actual_s": sim.actual,
        "baseline_s": sim.baseline,
        "expected_s": sim.expected,
        "speedup": sim.speedup,
        "runs": [
            {
                "run_id": r.run_id,
                "actual_s": r.actual,
                "baseline_s": r.baseline,
                "expected_s": r.expected,
                "slots": r.slots,
            }
            for r in sim.runs
        ],
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def simulate_command(
    dag: Annotated[str, typer.Argument(help="The DAG to replay.", show_default=False)],
    airflow: Annotated[
        str | None,
        typer.Option(
            "--airflow", help="A deployment named under airflow: in the config.", show_default=False
        ),
    ] = None,
    airflow_db: AirflowDbOpt = None,
    airflow_url: AirflowUrlOpt = None,
    import_file: ImportOpt = None,
    slots: Annotated[
        int | None,
        typer.Option(
            "--slots",
            min=1,
            help="Task slots for every run (default: what each run had).",
            show_default=False,
        ),
    ] = None,
    task: Annotated[
        list[str] | None,
        typer.Option(
            "--task",
            help="TASK=DURATION (30s, 5m) or TASK=PERCENT% of its time (repeatable).",
            show_default=False,
        ),
    ] = None,
    drop_edge: Annotated[
        list[str] | None,
        typer.Option(
            "--drop-edge",
            help="UPSTREAM>DOWNSTREAM: without this dependency (repeatable).",
            show_default=False,
        ),
    ] = None,
    runs: Annotated[
        int | None,
        typer.Option(
            "--runs", min=1, help="Recent runs to replay (default 20).", show_default=False
        ),
    ] = None,
    config: ConfigOpt = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", "-f", help="text or json.", show_default=False),
    ] = None,
    output: OutputOpt = None,
) -> None:
    """What-if: replay a DAG's recent runs with other slots, task times or dependencies."""
    if fmt not in (None, "text", "json"):
        fail(f"unknown format {fmt!r} (expected text or json)")
    cfg = load_or_fail(config)
    tasks = dict(parse_task_time(t) for t in task or [])
    dropped = frozenset(parse_edge(e) for e in drop_edge or [])
    sources = resolve_sources(
        cfg, [airflow] if airflow else None, airflow_db, airflow_url, import_file
    )
    if len(sources) > 1:
        fail("several deployments are configured: pick one with --airflow NAME")
    name, source = sources[0]
    try:
        with progress_bar(f"reading {dag}") as progress:
            sim = simulate_dag(
                cfg,
                source,
                dag,
                WhatIf(slots=slots, tasks=tasks, dropped=dropped),
                name=name,
                runs=runs,
                progress=progress,
            )
    except ValueError as exc:
        fail(str(exc))
    except SOURCE_ERRORS as exc:
        fail(redact(str(exc)))
    write_output(simulation_json(sim) if fmt == "json" else simulation_text(sim), output)

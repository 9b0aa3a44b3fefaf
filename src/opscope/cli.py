"""The `opscope` command: one Typer app with a sub-command group per area.

Thin on purpose: parse arguments, call the area's function, render. User mistakes and
unreachable targets end in one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from opscope import __version__
from opscope.checks import CheckFailed, default_registry
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
    resolve_target,
)
from opscope.db.connection import TargetConnectionError
from opscope.findings import CheckError, Report
from opscope.redact import redact

app = typer.Typer(
    name="opscope",
    help="Find out why a data platform is slow, and keep watch over it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
analyze_app = typer.Typer(
    help="Analyze a target and report findings with fixes.", no_args_is_help=True
)
app.add_typer(analyze_app, name="analyze")


@analyze_app.command("db")
def analyze_db(
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            help="DSNs (postgresql://...) or database names from the config; "
            "default: every database in the config.",
            show_default=False,
        ),
    ] = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    fail_on: FailOnOpt = None,
    window: Annotated[
        str | None,
        typer.Option(
            "--window",
            help="Sample pg_stat_statements twice this far apart (e.g. "
            "5m) and report only what ran in between.",
            show_default=False,
        ),
    ] = None,
    check: Annotated[
        list[str] | None,
        typer.Option("--check", help="Run only this check (repeatable).", show_default=False),
    ] = None,
    apply: Annotated[
        bool,
        typer.Option(
            "--apply",
            help="Run the safe fixes (ANALYZE of stale tables), printing each statement first.",
        ),
    ] = False,
) -> None:
    """PostgreSQL health report: slow queries, index review, table statistics."""
    from opscope.db.analyze import analyze_database, target_name

    check_output_options(fmt, output, fail_on)
    cfg = load_or_fail(config)
    window_s = parse_duration(window, "--window") if window else None
    pairs: list[tuple[str | None, str]] = []
    for item in targets or list(cfg.databases):
        pairs.append(resolve_target(item, cfg))
    if not pairs:
        fail("no database given: pass a DSN, or name databases in opscope.yaml")
    report = Report()
    unreachable = False
    for name, dsn in pairs:
        try:
            report.extend(
                analyze_database(
                    dsn,
                    cfg,
                    name=name,
                    window_s=window_s,
                    only=check,
                    apply=apply,
                    echo=lambda line: typer.echo(line, err=True),
                )
            )
        except ValueError as exc:
            fail(str(exc))
        except (TargetConnectionError, CheckFailed) as exc:
            if len(pairs) == 1:
                fail(str(exc))
            # one database down must not hide the report on the others
            unreachable = True
            typer.echo(f"opscope: error: {redact(str(exc))}", err=True)
            label = name or target_name(dsn)
            report.errors.append(
                CheckError(check="connection", message=redact(str(exc)), target=label)
            )
    emit(report, fmt, output, fail_on)
    if unreachable:
        raise typer.Exit(USAGE_ERROR)


@app.command("checks")
def list_checks(
    fmt: Annotated[str, typer.Option("--format", "-f", help="text or json")] = "text",
) -> None:
    """List every registered check with what triggers it."""
    checks = sorted(default_registry(), key=lambda c: (c.kind, c.category, c.id))
    if fmt == "json":
        import json

        typer.echo(
            json.dumps(
                [
                    {"id": c.id, "kind": c.kind, "category": c.category, "summary": c.summary}
                    for c in checks
                ],
                indent=2,
            )
        )
        return
    if fmt != "text":
        fail(f"unknown format {fmt!r} (expected text or json)")
    width = max(len(c.id) for c in checks)
    for c in checks:
        typer.echo(f"{c.id:<{width}}  {c.kind}/{c.category}: {c.summary}")


def _register_area_commands() -> None:
    """Commands whose code lives with their area; imported here so `--help` lists them."""
    from opscope.db.advisor.command import advise_command
    from opscope.db.logs.command import logs_command
    from opscope.db.plans.command import explain_command

    app.command("logs")(logs_command)
    app.command("explain")(explain_command)
    indexes_app = typer.Typer(
        help="Index advice from the workload in pg_stat_statements.", no_args_is_help=True
    )
    app.add_typer(indexes_app, name="indexes")
    indexes_app.command("advise")(advise_command)


_register_area_commands()


@app.command("version")
def version() -> None:
    """Print opscope's version."""
    typer.echo(__version__)


def main() -> None:
    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:
        typer.echo("opscope: interrupted", err=True)
        sys.exit(130)

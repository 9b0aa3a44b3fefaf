"""`opscope analyze db`, and what the PostgreSQL commands share: naming a database."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer

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
)
from opscope.config import Config
from opscope.db.analyze import analyze_database, target_name
from opscope.db.connection import TargetConnectionError
from opscope.db.monitor.snapshot import NoHistory
from opscope.db.settings import databases
from opscope.findings import CheckError, Report, utc_now
from opscope.monitor.settings import serve_settings
from opscope.redact import redact

if TYPE_CHECKING:
    from opscope.monitor.store import Store


def resolve_target(item: str, cfg: Config) -> tuple[str | None, str]:
    """(config name or None, DSN) of a command-line target: a database named in the config,
    or a DSN."""
    named = databases(cfg)
    if item in named:
        return item, named[item].dsn
    if "://" in item or "=" in item:
        return None, item
    where = f" in {cfg.source}" if cfg.source else ""
    # something with '@' or ':' may be a mistyped DSN holding a password: never echoed
    shown = "the argument" if "@" in item or ":" in item else repr(item)
    fail(f"{shown} is neither a DSN nor a database named{where}")


def target_and_name(item: str, cfg: Config) -> tuple[str, str]:
    """(name, DSN): the config's name for it, else the database name in the DSN."""
    config_name, dsn = resolve_target(item, cfg)
    return config_name or target_name(dsn), dsn


def analyze_db_command(
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
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Report what the snapshots opscope serve stored say happened since then "
            "(e.g. 1h, 2d): statements, scans and writes of that window only.",
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
    check_output_options(fmt, output, fail_on)
    cfg = load_or_fail(config)
    window_s = parse_duration(window, "--window") if window else None
    since_s = parse_duration(since, "--since") if since else None
    if window_s and since_s:
        fail("--window samples now and --since reads the store: give one of them")
    pairs = [target_and_name(item, cfg) for item in targets or list(databases(cfg))]
    if not pairs:
        fail("no database given: pass a DSN, or name databases in opscope.yaml")
    store = _history(cfg, required=since_s is not None)
    report = Report()
    unreachable = False
    try:
        for name, dsn in pairs:
            try:
                report.extend(
                    analyze_database(
                        cfg,
                        dsn,
                        name=name,
                        window_s=window_s,
                        only=check,
                        apply=apply,
                        echo=say,
                        history=store,
                        since=utc_now() - timedelta(seconds=since_s) if since_s else None,
                    )
                )
            except (ValueError, NoHistory) as exc:
                fail(str(exc))
            except (TargetConnectionError, CheckFailed) as exc:
                if len(pairs) == 1:
                    fail(str(exc))
                # one database down must not hide the report on the others
                unreachable = True
                say(f"opscope: error: {exc}")
                report.errors.append(
                    CheckError(check="connection", message=redact(str(exc)), target=name)
                )
    finally:
        if store is not None:
            store.close()
    emit(report, fmt, output, fail_on)
    if unreachable:
        raise typer.Exit(USAGE_ERROR)


def _history(cfg: Config, required: bool) -> Store | None:
    """The store of `opscope serve` (serve.store), read only: what --since reads, and what
    judges index usage over the whole observed window when it exists."""
    # imported here: the store brings SQLAlchemy and alembic, a third of a second that every
    # other command (and `--help`) would pay at start-up
    from opscope.monitor.store import StoreError, open_for_reading

    settings = serve_settings(cfg)
    url = settings.store_url(cfg)
    explicit = settings.store is not None
    try:
        return open_for_reading(url)
    except StoreError as exc:
        if required:
            fail(str(exc))
        if explicit:
            say(f"opscope: warning: {exc}")
        return None

"""`opscope serve` and `opscope check`."""

from __future__ import annotations

from typing import Annotated

import typer

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
    say,
)
from opscope.plugins import PluginError, default_plugins


def serve_command(
    config: ConfigOpt = None,
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            help="Address to listen on (default: serve.listen, else 127.0.0.1); anything but "
            "localhost needs serve.token.",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            help="Port (default: serve.listen, else 9310).",
            show_default=False,
            min=1,
            max=65535,
        ),
    ] = None,
) -> None:
    """Run the collectors on their schedules, keep their history and serve /metrics and the
    JSON API."""
    # the service (FastAPI, uvicorn, SQLAlchemy, alembic) is imported when it runs, not when
    # any command starts: it is most of opscope's start-up time otherwise
    from opscope.monitor.service import ServeError, Service, configure_logging
    from opscope.monitor.store import StoreError

    cfg = load_or_fail(config)
    configure_logging()
    try:
        service = Service(config, cfg, default_plugins(), host=host, port=port)
        service.serve()
    except (ServeError, StoreError, PluginError) as exc:
        fail(str(exc))
    except OSError as exc:  # the address is taken, say
        fail(f"cannot serve: {exc.strerror or exc}")


def check_command(
    config: ConfigOpt = None,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    fail_on: FailOnOpt = None,
) -> None:
    """Run every configured analysis once (databases, APIs, ...), for cron and CI."""
    from opscope.monitor.evaluate import evaluate_everything  # brings the store: see serve

    check_output_options(fmt, output, fail_on)
    cfg = load_or_fail(config)
    try:
        report, unreachable = evaluate_everything(cfg, default_plugins(), echo=say)
    except PluginError as exc:
        fail(str(exc))
    if not report.targets and not unreachable:
        fail("nothing to check: name databases, APIs or other targets in opscope.yaml")
    emit(report, fmt, output, fail_on)
    if unreachable:
        raise typer.Exit(USAGE_ERROR)

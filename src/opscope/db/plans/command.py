"""`opscope explain DSN "SQL"`: a readable plan tree and what is wrong with it."""

from __future__ import annotations

import sys
from typing import Annotated

import psycopg
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
from opscope.db.command import target_and_name
from opscope.db.connection import TargetConnectionError
from opscope.db.logs.reader import LogInputError
from opscope.db.plans.analysis import explain_statement, values_from_log
from opscope.db.plans.explain import ExplainFailed
from opscope.errors import first_line


def explain_command(
    target: Annotated[
        str, typer.Argument(help="A DSN (postgresql://...) or a database named in the config.")
    ],
    query: Annotated[str, typer.Argument(help="The statement to explain; - reads it from stdin.")],
    analyze: Annotated[
        bool | None,
        typer.Option(
            "--analyze/--no-analyze",
            help="Run the statement (EXPLAIN ANALYZE). Default: when it is provably read-only "
            "and all parameter values are given. Statements that write are never run.",
            show_default=False,
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param", "-p", help="Value of $1, $2, ... in order (repeatable).", show_default=False
        ),
    ] = None,
    log: Annotated[
        list[str] | None,
        typer.Option(
            "--log",
            help="Server log file(s): plan with the values of this statement's slowest logged "
            "execution (repeatable; any format opscope logs reads).",
            show_default=False,
        ),
    ] = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    fail_on: FailOnOpt = None,
) -> None:
    """Explain a statement: plan tree, problems found in it, and their fixes."""
    check_output_options(fmt, output, fail_on)
    cfg = load_or_fail(config)
    name, dsn = target_and_name(target, cfg)
    text = sys.stdin.read() if query == "-" else query
    if not text.strip():
        fail("no statement given")
    note: str | None = None
    if log and not param:
        try:
            logged = values_from_log(log, text)
        except LogInputError as exc:
            fail(str(exc))
        text, param, note = logged.statement, logged.params, logged.note
    try:
        report = explain_statement(
            cfg, dsn, text, name=name, params=param, analyze=analyze, values_note=note
        )
    except (TargetConnectionError, ExplainFailed) as exc:
        fail(str(exc))
    except psycopg.Error as exc:
        # a catalog query cancelled by statement_timeout, a dropped connection: one line
        fail(f"{name}: {first_line(exc)}")
    emit(report, fmt, output, fail_on)

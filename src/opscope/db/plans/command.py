"""`opscope explain DSN "SQL"`: a readable plan tree and what is wrong with it."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import psycopg
import typer
from pglast import parser

from opscope.cli_common import (
    ConfigOpt,
    FailOnOpt,
    FormatOpt,
    OutputOpt,
    check_output_options,
    emit,
    fail,
    load_or_fail,
    resolve_target,
    write_output,
)
from opscope.db.analyze import target_name
from opscope.db.catalog import Catalog
from opscope.db.connection import SqlRunner, TargetConnectionError, connect
from opscope.db.context import KIND
from opscope.db.plans.diagnose import diagnose
from opscope.db.plans.explain import ExplainFailed, explain
from opscope.db.plans.findings import issue_finding
from opscope.db.plans.render import render_issues, render_plan
from opscope.db.plans.review import read_setting
from opscope.db.plans.vouch import ReadOnly
from opscope.findings import Report, Severity, Target, fingerprint


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
    config_name, dsn = resolve_target(target, cfg)
    name = config_name or target_name(dsn)
    text = sys.stdin.read() if query == "-" else query
    if not text.strip():
        fail("no statement given")
    from_log = ""
    if log and not param:
        text, param, from_log = _values_from_log(log, text)
    try:
        conn = connect(dsn, cfg.session)
    except TargetConnectionError as exc:
        fail(str(exc))
    try:
        catalog = Catalog(SqlRunner(conn))
        summary = catalog.summary
        try:
            result = explain(
                conn,
                text,
                analyze=analyze,
                params=param,
                read_only=ReadOnly(cfg.plans.read_only_functions, cfg.plans.read_only_extensions),
            )
        except ExplainFailed as exc:
            fail(str(exc))
        tables = {t.qualified: t for t in catalog.tables}
        issues = diagnose(
            result.plan, tables=tables, setting=read_setting(conn), settings=cfg.plans
        )
    except psycopg.Error as exc:
        # a catalog query cancelled by statement_timeout, a dropped connection: one line
        first = str(exc).strip().splitlines()
        fail(f"{name}: {first[0] if first else type(exc).__name__}")
    finally:
        conn.close()
    key = _fingerprint(text)
    report = Report(targets=[Target(kind=KIND, name=name, server_version=summary.server_version)])
    report.findings.extend(
        issue_finding(i, target=name, query=text.strip(), query_key=key) for i in issues
    )
    plan_info: dict[str, Any] = {
        "query": text.strip(),
        "fingerprint": key,
        "analyzed": result.plan.analyzed,
        "generic_plan": result.plan.generic,
        "total_cost": result.plan.total_cost,
        "execution_ms": result.plan.execution_ms,
        "note": result.note or None,
        "values_from_log": from_log or None,
        "tree": render_plan(result.plan, issues),
    }
    report.summary[name] = {"plan": plan_info}
    if (fmt is None or fmt == "terminal") and (output is None or output.suffix in {"", ".txt"}):
        body = f"({from_log})\n" if from_log else ""
        body += render_plan(result.plan, issues)
        if result.note:
            body += f"({result.note})\n"
        write_output(body + "\n" + render_issues(issues), output)
        if report.fails(_severity(fail_on)):
            raise typer.Exit(1)
        return
    emit(report, fmt, output, fail_on)


def _values_from_log(paths: list[str], text: str) -> tuple[str, list[str] | None, str]:
    """(statement, parameter values, note) from the slowest logged execution of `text`:
    its bind parameters, or its literal text when it was sent without any."""
    from opscope.db.logs.examples import slowest_example
    from opscope.db.logs.reader import LogInputError

    try:
        example = slowest_example(paths, text)
    except LogInputError as exc:
        fail(str(exc))
    if example is None:
        return text, None, "not found in the log: generic plan"
    when = f"slowest logged execution, {example.duration_ms:,.1f} ms at {example.ts}"
    if example.parameters is not None:
        if any(v is None for v in example.parameters):
            # NULL cannot be passed as a text value here; a generic plan is the honest answer
            return text, None, f"{when}: has NULL parameters, generic plan"
        return text, [v for v in example.parameters if v is not None], f"values from the {when}"
    if "$1" in example.text:
        return text, None, f"{when}: parameters not logged, generic plan"
    return example.text, None, f"the {when}, as logged"


def _severity(text: str | None) -> Severity | None:
    if text is None:
        return None
    try:
        return Severity.parse(text)
    except ValueError as exc:
        fail(str(exc))


def _fingerprint(query: str) -> str:
    try:
        return str(parser.fingerprint(query))
    except Exception:  # unparsable text was refused earlier; keep a stable fallback anyway
        return fingerprint(query)

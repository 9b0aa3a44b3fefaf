"""`explain_statement`: one statement's plan, diagnosed by the checks of the statement scope
(`opscope explain`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pglast import parser

from opscope.checks import Registry, run_checks
from opscope.config import Config
from opscope.db.connection import ConnectionFactory, SqlRunner, connect, raise_if_lost
from opscope.db.context import KIND, STATEMENT, DbContext
from opscope.db.fixes import sql_changes
from opscope.db.logs.examples import slowest_example
from opscope.db.plans.explain import explain
from opscope.db.plans.render import render_plan
from opscope.db.plans.reviewed import ReviewedStatement
from opscope.db.plans.vouch import ReadOnly
from opscope.db.settings import settings_for
from opscope.findings import Clock, Finding, Report, Target, fingerprint, utc_now
from opscope.fixes import group_fixes
from opscope.plugins import default_plugins
from opscope.redact import redact
from opscope.sqltext import short_query


def statement_key(query: str) -> str:
    """What tells a statement given on the command line apart in finding ids: the parser's
    fingerprint, the one pg_stat_statements' queryid resembles."""
    try:
        return str(parser.fingerprint(query))
    except Exception:  # unparsable text was refused by explain; keep a stable fallback anyway
        return fingerprint(query)


def plan_marks(findings: Sequence[Finding], statement: str) -> dict[int, list[str]]:
    """`check: title` of each finding, by the plan node it names (`evidence.plan_node`); the
    statement the title ends with is left out, since the tree is that statement's."""
    suffix = f" in: {short_query(statement.strip(), 60)}"
    marks: dict[int, list[str]] = {}
    for f in findings:
        node = f.evidence.get("plan_node")
        if isinstance(node, int) and not isinstance(node, bool):
            marks.setdefault(node, []).append(f"{f.check}: {f.title.removesuffix(suffix)}")
    return marks


def explain_statement(
    config: Config,
    dsn: str,
    statement: str,
    *,
    name: str,
    params: Sequence[str] | None = None,
    analyze: bool | None = None,
    values_note: str | None = None,
    registry: Registry | None = None,
    connect: ConnectionFactory = connect,
    clock: Clock = utc_now,
) -> Report:
    """Explain `statement` on the database and run the statement-scope checks on its plan.

    EXPLAIN ANALYZE only for a provably read-only statement (see opscope.db.plans.explain).
    Raises TargetConnectionError, ExplainFailed (the statement cannot be explained) and
    psycopg.Error (a catalog query failed): without a plan there is nothing to report."""
    registry = registry or default_plugins().checks
    settings = settings_for(config, name)
    conn = connect(dsn, settings.session)
    try:
        context = DbContext(target=name, runner=SqlRunner(conn), settings=settings, scope=STATEMENT)
        summary = context.summary
        plans = settings.plans
        result = explain(
            conn,
            statement,
            analyze=analyze,
            params=params,
            read_only=ReadOnly(plans.read_only_functions, plans.read_only_extensions),
        )
        key = statement_key(statement)
        context.explained = ReviewedStatement(None, statement, result, key)
        findings, errors = run_checks(registry.for_kind(KIND, STATEMENT), context, target=name)
        # a lost link fails every check the same way: not a report, one line
        raise_if_lost(conn, dsn)
    finally:
        conn.close()
    plan = result.plan
    report = Report(
        generated_at=clock(),
        targets=[Target(kind=KIND, name=name, server_version=summary.server_version)],
        findings=findings,
        errors=errors,
    )
    # a statement taken from a server log is someone else's text, and EXPLAIN VERBOSE repeats
    # its constants: both are shown with their secrets masked
    plan_info: dict[str, Any] = {
        "query": redact(statement.strip()),
        "fingerprint": key,
        "analyzed": plan.analyzed,
        "generic_plan": plan.generic,
        "total_cost": plan.total_cost,
        "execution_ms": plan.execution_ms,
        "note": result.note or None,
        "values_from_log": values_note,
        "tree": redact(render_plan(plan, plan_marks(findings, statement))),
    }
    report.summary[name] = {"plan": plan_info}
    report.fixes = group_fixes(findings, sql_changes)
    return report


@dataclass(frozen=True)
class LoggedValues:
    """A statement to explain as its slowest logged execution ran it."""

    statement: str
    params: list[str] | None
    #: where the values came from, or why there are none
    note: str


def values_from_log(paths: Sequence[str], text: str) -> LoggedValues:
    """The statement and parameter values of the slowest logged execution of `text`: its
    bind parameters, or its literal text when it was sent without any. Raises LogInputError
    for a file that cannot be read."""
    example = slowest_example(paths, text)
    if example is None:
        return LoggedValues(text, None, "not found in the log: generic plan")
    when = f"slowest logged execution, {example.duration_ms:,.1f} ms at {example.ts}"
    if example.parameters is not None:
        if any(v is None for v in example.parameters):
            # NULL cannot be passed as a text value here; a generic plan is the honest answer
            return LoggedValues(text, None, f"{when}: has NULL parameters, generic plan")
        values = [v for v in example.parameters if v is not None]
        return LoggedValues(text, values, f"values from the {when}")
    if "$1" in example.text:
        return LoggedValues(text, None, f"{when}: parameters not logged, generic plan")
    return LoggedValues(example.text, None, f"the {when}, as logged")

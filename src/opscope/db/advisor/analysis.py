"""`advise_indexes`: the indexes the workload needs, from the checks of the workload scope
(`opscope indexes advise`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from opscope.checks import CheckFailed, Registry, run_checks
from opscope.config import Config
from opscope.db.advisor.model import AdvisorResult
from opscope.db.advisor.sources import WorkloadSources, filtered, gather
from opscope.db.advisor.verify import Verification, verify
from opscope.db.catalog import Catalog
from opscope.db.checks.advisor import RESULT_KEY
from opscope.db.connection import ConnectionFactory, SqlRunner, connect, raise_if_lost
from opscope.db.context import KIND, WORKLOAD, DbContext
from opscope.db.fixes import sql_changes
from opscope.db.naming import BUILD_PREFIX
from opscope.db.settings import settings_for
from opscope.findings import Clock, Report, Target, utc_now
from opscope.fixes import group_fixes
from opscope.plugins import default_plugins
from opscope.sqltext import qualified


def advise_indexes(
    config: Config,
    dsn: str,
    *,
    name: str,
    overrides: Mapping[str, Any] | None = None,
    verify_apply: bool = False,
    sources: WorkloadSources | None = None,
    registry: Registry | None = None,
    connect: ConnectionFactory = connect,
    clock: Clock = utc_now,
    echo: Callable[[str], None] = lambda _: None,
) -> Report:
    """Study the workload of pg_stat_statements with the advisor's settings (`overrides`
    replace keys of `postgresql.advisor`) and report the indexes it needs.

    `sources`: the workload from statements, SQL files, logs or pg_stat_activity instead of
    pg_stat_statements (sources.py), and the --min-calls/--min-time filters.

    With `verify_apply`, the recommended indexes are built for real (staging only) and the
    statements timed before and after. Raises TargetConnectionError, WorkloadError and
    LogInputError for a source that cannot be read, and VerifyFailed or psycopg.Error when
    the verification cannot run."""
    registry = registry or default_plugins().checks
    settings = settings_for(config, name)
    if overrides:
        settings = settings.model_copy(
            update={"advisor": settings.advisor.model_copy(update=dict(overrides))}
        )
    report = Report(generated_at=clock())
    conn = connect(dsn, settings.session)
    try:
        context = DbContext(target=name, runner=SqlRunner(conn), settings=settings, scope=WORKLOAD)
        summary = context.summary
        if sources is not None:
            use_sources(context, sources, conn.info.dbname, settings.session.application_name)
        report.targets.append(Target(kind=KIND, name=name, server_version=summary.server_version))
        findings, errors = run_checks(registry.for_kind(KIND, WORKLOAD), context, target=name)
        # a lost link fails every check the same way: not a report, one line
        raise_if_lost(conn, dsn)
        result = context.shared.get(RESULT_KEY)
        leftovers = leftover_notes(context.catalog)
    finally:
        conn.close()
    report.findings.extend(findings)
    report.errors.extend(errors)
    report.fixes = group_fixes(findings, sql_changes)
    if not isinstance(result, AdvisorResult):
        # the advisor failed: its error is in `errors`, and there is nothing to summarize
        return report
    info = advisor_summary(result)
    info["notes"] = [*info["notes"], *leftovers]
    if verify_apply and result.recommendations:
        info.update(
            verification_summary(verify(dsn, settings.session, result.recommendations, echo=echo))
        )
    report.summary[name] = {"advisor": info}
    return report


def use_sources(context: DbContext, sources: WorkloadSources, database: str, own: str) -> None:
    if sources.given:
        snapshot, examples = gather(sources, context.runner.conn, database=database, own_name=own)
        context.workload, context.workload_examples = snapshot, examples
    if sources.min_calls > 1 or sources.min_time_ms > 0:
        # without pg_stat_statements (and no other source), the advisor's check says so
        with contextlib.suppress(CheckFailed):
            context.workload = filtered(context.statements, sources)


def leftover_notes(catalog: Catalog) -> list[str]:
    """An index under opscope's temporary build name was left by an interrupted
    `--verify --apply` (killed, or its session lost): offer the statement that drops it."""
    out: list[str] = []
    for idx in catalog.indexes:
        if idx.name.startswith(BUILD_PREFIX):
            what = (
                "is an INVALID index left by an interrupted --verify --apply"
                if not idx.is_valid
                else "was built by an interrupted --verify --apply but never renamed"
            )
            out.append(
                f"{idx.qualified} {what}: DROP INDEX CONCURRENTLY "
                f"{qualified(idx.schema, idx.name)};"
            )
    return out


def advisor_summary(result: AdvisorResult) -> dict[str, Any]:
    return {
        "statements_studied": len(result.workload),
        "candidates": result.candidates,
        "candidates_costed": result.costed,
        "explains": result.explains,
        "verified": result.verified,
        "partial": result.partial,
        "notes": result.notes,
    }


def verification_summary(checked: Verification) -> dict[str, Any]:
    return {
        "applied": checked.applied,
        "timings": [
            {
                "queryid": t.statement.queryid,
                "query": t.statement.query,
                "before_ms": t.before_ms,
                "after_ms": t.after_ms,
                "speedup": round(t.speedup, 2) if t.speedup else None,
            }
            for t in checked.timings
        ],
        "not_timed": checked.skipped,
    }

"""The automatic plan review of `opscope analyze db`: the top statements of
pg_stat_statements, explained and diagnosed once per run and shared by the plan checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from opscope.config import PlanSettings
from opscope.db.checks.statements import is_maintenance
from opscope.db.connection import load_sql
from opscope.db.context import DbContext
from opscope.db.plans.diagnose import PlanIssue, PlanSetting, diagnose
from opscope.db.plans.explain import ExplainFailed, ExplainResult, explain
from opscope.db.plans.samples import Sample, read_samples
from opscope.db.plans.vouch import ReadOnly
from opscope.db.statements import Statement

T = TypeVar("T")


def cached_on(context: DbContext, key: str, build: Callable[[], T]) -> T:
    """Work shared by several checks of one run, computed once per context: the checks run
    one after another on the same context object, which is dropped after the run."""
    if key not in context.shared:
        context.shared[key] = build()
    value: T = context.shared[key]
    return value


@dataclass(frozen=True)
class ReviewedStatement:
    statement: Statement
    #: the text that was explained: the normalized one, or a pg_qualstats example
    explained: str
    result: ExplainResult | None
    issues: tuple[PlanIssue, ...] = ()
    error: str | None = None


def read_setting(conn: psycopg.Connection[Any]) -> PlanSetting:

    text = load_sql("plan_settings", conn.info.server_version)
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(sql.SQL(text)).fetchone()
    if row is None:
        return PlanSetting()
    return PlanSetting(
        work_mem_kb=int(row["work_mem_kb"]),
        hash_mem_multiplier=float(row["hash_mem_multiplier"]),
        default_statistics_target=int(row["default_statistics_target"]),
    )


def samples(context: DbContext) -> dict[int, Sample]:
    """pg_qualstats' example of each statement with its values, when the extension is there."""
    return cached_on(
        context,
        "qualstats_samples",
        lambda: read_samples(context.runner, context.summary.has_pg_qualstats),
    )


def top_statements(context: DbContext, limit: int) -> list[Statement]:
    t = context.thresholds
    candidates = [
        s
        for s in context.statements.statements
        if s.toplevel and s.calls >= t.min_calls and not is_maintenance(s.query)
    ]
    candidates.sort(key=lambda s: -s.total_exec_time)
    return candidates[:limit]


def review(context: DbContext, settings: PlanSettings | None = None) -> list[ReviewedStatement]:
    settings = settings or context.plans
    return cached_on(context, "plan_review", lambda: _review(context, settings))


def _review(context: DbContext, settings: PlanSettings) -> list[ReviewedStatement]:
    conn = context.runner.conn
    setting = read_setting(conn)
    tables = {t.qualified: t for t in context.catalog.tables}
    known = samples(context)
    read_only = ReadOnly(settings.read_only_functions, settings.read_only_extensions)
    out: list[ReviewedStatement] = []
    for s in top_statements(context, settings.review_statements):
        text = s.query
        params: tuple[str, ...] | None = None
        # a sampled example with real values plans like the application's real calls
        sample = known.get(s.queryid)
        if "$" in text and sample is not None and sample.complete:
            text, params = sample.text, sample.params
        cheap = s.mean_exec_time <= settings.review_analyze_max_mean_ms
        try:
            result = explain(
                conn, text, analyze=None if cheap else False, params=params, read_only=read_only
            )
        except ExplainFailed as exc:
            if text is not s.query:
                try:
                    text = s.query
                    result = explain(
                        conn, text, analyze=None if cheap else False, read_only=read_only
                    )
                except ExplainFailed as exc2:
                    out.append(ReviewedStatement(s, text, None, error=str(exc2)))
                    continue
            else:
                out.append(ReviewedStatement(s, text, None, error=str(exc)))
                continue
        issues = diagnose(
            result.plan,
            tables=tables,
            setting=setting,
            settings=settings,
            temp_blocks_written=s.temp_blks_written,
        )
        out.append(ReviewedStatement(s, text, result, tuple(issues)))
    return out

"""The automatic plan review of `opscope analyze db`: the top statements of
pg_stat_statements, explained and diagnosed once per run and shared by the plan checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from opscope.db.connection import load_sql
from opscope.db.context import DbContext
from opscope.db.plans.diagnose import PlanInputs, PlanSetting
from opscope.db.plans.explain import ExplainFailed, explain
from opscope.db.plans.reviewed import ReviewedStatement
from opscope.db.plans.samples import Sample, read_samples
from opscope.db.plans.vouch import ReadOnly
from opscope.db.settings import PlanSettings
from opscope.db.statements import Statement, is_maintenance

T = TypeVar("T")


def cached_on(context: DbContext, key: str, build: Callable[[], T]) -> T:
    """Work shared by several checks of one run, computed once per context: the checks run
    one after another on the same context object, which is dropped after the run. A failure
    is kept too, so the next check that needs the work fails the same way without paying
    for it again."""
    if key not in context.shared:
        try:
            context.shared[key] = build()
        except Exception as exc:
            context.shared[key] = _Failed(exc)
    value = context.shared[key]
    if isinstance(value, _Failed):
        raise value.error
    built: T = value
    return built


@dataclass(frozen=True)
class _Failed:
    error: Exception


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


def reviewed_plans(context: DbContext) -> list[ReviewedStatement]:
    """The statements whose plans the plan checks diagnose: the one `opscope explain` was
    given, or `analyze db`'s top statements, explained once per run."""
    if context.explained is not None:
        return [context.explained]
    return cached_on(context, "plan_review", lambda: _review(context, context.plans))


def plan_inputs(context: DbContext, reviewed: ReviewedStatement) -> PlanInputs:
    """What the rules read besides the plan, read from the server once per run."""
    shared = cached_on(
        context,
        "plan_inputs",
        lambda: PlanInputs(
            tables={t.qualified: t for t in context.catalog.tables},
            setting=read_setting(context.runner.conn),
            settings=context.plans,
            names=context.catalog.index_names,
        ),
    )
    temp = reviewed.statement.temp_blks_written if reviewed.statement is not None else 0
    return replace(shared, temp_blocks_written=temp)


def _review(context: DbContext, settings: PlanSettings) -> list[ReviewedStatement]:
    conn = context.runner.conn
    known = samples(context)
    read_only = ReadOnly(settings.read_only_functions, settings.read_only_extensions)
    out: list[ReviewedStatement] = []
    for s in top_statements(context, settings.review_statements):
        key = str(s.queryid)
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
                    out.append(ReviewedStatement(s, text, None, key, str(exc2), exc2.sqlstate))
                    continue
            else:
                out.append(ReviewedStatement(s, text, None, key, str(exc), exc.sqlstate))
                continue
        out.append(ReviewedStatement(s, text, result, key))
    return out

"""`--verify --apply` (for staging): build the chosen indexes for real, and measure.

The SQL is printed before it runs, indexes are built with CREATE INDEX CONCURRENTLY in a
writable session (the only writes opscope ever makes, and only behind --apply), and the
statements the advisor said they help are timed before and after with EXPLAIN ANALYZE in the
read-only session: only statements that are read-only and whose text has real values (no
$n parameters: a pg_qualstats example, or a statement without constants) can be timed.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from opscope.config import SessionSettings
from opscope.db.advisor.advise import Recommendation, WorkloadStatement
from opscope.db.connection import connect
from opscope.db.plans.explain import ExplainFailed, explain, inspect_statement


@dataclass(frozen=True)
class Timing:
    statement: WorkloadStatement
    before_ms: float | None
    after_ms: float | None

    @property
    def speedup(self) -> float | None:
        if not self.before_ms or not self.after_ms:
            return None
        return self.before_ms / self.after_ms


@dataclass(frozen=True)
class Verification:
    applied: list[str]
    timings: list[Timing]
    skipped: list[str]


def runnable(statement: WorkloadStatement) -> bool:
    try:
        shape = inspect_statement(statement.text)
    except ExplainFailed:
        return False
    known = statement.params is not None and len(statement.params) >= shape.param_count
    return shape.read_only and (shape.param_count == 0 or known)


def time_statement(
    conn: psycopg.Connection[Any], text: str, params: Sequence[str] | None, repeat: int
) -> float | None:
    """Median execution time over `repeat` EXPLAIN ANALYZE runs (the first warms the cache)."""
    times: list[float] = []
    for _ in range(repeat + 1):
        try:
            plan = explain(conn, text, analyze=True, params=params).plan
        except ExplainFailed:
            return None
        if plan.execution_ms is None:
            return None
        times.append(plan.execution_ms)
    return statistics.median(times[1:])


def verify(
    dsn: str,
    session: SessionSettings,
    recommendations: Sequence[Recommendation],
    *,
    echo: Callable[[str], None],
    repeat: int = 5,
) -> Verification:
    statements: dict[int, WorkloadStatement] = {}
    for rec in recommendations:
        for effect in rec.effects:
            statements[effect.statement.key] = effect.statement
    timed = [s for s in statements.values() if runnable(s)]
    skipped = [
        f"query {s.queryid}: no real parameter values to run it with"
        for s in statements.values()
        if s not in timed
    ]
    # building an index can take long: no statement timeout for the build session
    build_session = session.model_copy(update={"statement_timeout_ms": 0})
    reader = connect(dsn, session)
    try:
        before = {s.key: time_statement(reader, s.text, s.params, repeat) for s in timed}
        applied: list[str] = []
        writer = connect(dsn, build_session, writable=True)
        try:
            for rec in recommendations:
                name = rec.candidate.index_name()
                stmt = rec.candidate.ddl(concurrently=True, name=name)
                text = stmt.as_string(writer) + ";"
                echo(f"applying: {text}")
                writer.execute(stmt)
                applied.append(text)
            if applied:
                writer.execute("/* opscope */ ANALYZE")
        finally:
            writer.close()
        after = {s.key: time_statement(reader, s.text, s.params, repeat) for s in timed}
    finally:
        reader.close()
    timings = [Timing(s, before[s.key], after[s.key]) for s in timed]
    return Verification(applied=applied, timings=timings, skipped=skipped)

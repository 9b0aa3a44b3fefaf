"""`--verify --apply` (for staging): build the chosen indexes for real, and measure.

The SQL is printed before it runs, indexes are built with CREATE INDEX CONCURRENTLY in a
writable session (the only writes opscope ever makes, and only behind --apply) without a lock
or statement timeout, since a concurrent build waits for every open transaction that wrote to
the table; a build that fails anyway (cancelled, connection lost) leaves an INVALID index
behind, which is dropped again before the error is reported. Then the
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
from psycopg import sql

from opscope.db.advisor.advise import Recommendation, WorkloadStatement
from opscope.db.connection import TargetConnectionError, connect
from opscope.db.plans.explain import ExplainFailed, explain, inspect_statement
from opscope.db.settings import SessionSettings
from opscope.errors import first_line


class VerifyFailed(Exception):
    """Building an index failed; the message is one line and says what was cleaned up."""


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


def drop_invalid(conn: psycopg.Connection[Any], schema: str, name: str) -> None:
    """Drop what a failed CREATE INDEX CONCURRENTLY left (an INVALID index), if anything.

    No lock timeout: the drop, too, waits for the transactions that still see the table."""
    conn.execute("SELECT set_config('lock_timeout', '0', false)")
    conn.execute(
        sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}.{}").format(
            sql.Identifier(schema), sql.Identifier(name)
        )
    )


def _cleanup(
    dsn: str,
    session: SessionSettings,
    writer: psycopg.Connection[Any],
    schema: str,
    name: str,
) -> None:
    if not writer.broken:
        drop_invalid(writer, schema, name)
        return
    # the build's session died with it (connection lost): clean up from a new one
    fresh = connect(dsn, session, writable=True)
    try:
        drop_invalid(fresh, schema, name)
    finally:
        fresh.close()


def build(
    dsn: str,
    session: SessionSettings,
    recommendations: Sequence[Recommendation],
    *,
    echo: Callable[[str], None],
    lock_timeout_ms: int = 0,
) -> list[str]:
    """Build the recommended indexes concurrently; the statements run, as printed."""
    # a concurrent build waits for open transactions and can take long: by default neither
    # a statement nor a lock timeout, which would leave an INVALID index half-way
    build_session = session.model_copy(
        update={"statement_timeout_ms": 0, "lock_timeout_ms": lock_timeout_ms}
    )
    applied: list[str] = []
    writer = connect(dsn, build_session, writable=True)
    try:
        echo(
            "building with CREATE INDEX CONCURRENTLY"
            + ("" if lock_timeout_ms else ", no lock or statement timeout")
            + ": each build waits for the transactions open on its table to finish"
        )
        for rec in recommendations:
            cand = rec.candidate
            name = rec.name
            stmt = cand.ddl(concurrently=True, name=name)
            text = stmt.as_string(writer) + ";"
            echo(f"applying: {text}")
            try:
                writer.execute(stmt)
            except psycopg.Error as exc:
                reason = first_line(exc)
                try:
                    _cleanup(dsn, build_session, writer, cand.schema, name)
                except (psycopg.Error, TargetConnectionError) as cleanup:
                    raise VerifyFailed(
                        f"building {cand.schema}.{name} failed: {reason}; dropping the "
                        f"INVALID index it left failed too ({first_line(cleanup)}): "
                        f"run DROP INDEX CONCURRENTLY {cand.schema}.{name}"
                    ) from None
                raise VerifyFailed(
                    f"building {cand.schema}.{name} failed: {reason} (the INVALID index it "
                    "left was dropped)"
                ) from None
            applied.append(text)
        tables = dict.fromkeys((r.candidate.schema, r.candidate.table) for r in recommendations)
        for schema, table in tables:
            writer.execute(
                sql.SQL("/* opscope */ ANALYZE {}.{}").format(
                    sql.Identifier(schema), sql.Identifier(table)
                )
            )
    finally:
        writer.close()
    return applied


def verify(
    dsn: str,
    session: SessionSettings,
    recommendations: Sequence[Recommendation],
    *,
    echo: Callable[[str], None],
    repeat: int = 5,
    build_lock_timeout_ms: int = 0,
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
    reader = connect(dsn, session)
    try:
        before = {s.key: time_statement(reader, s.text, s.params, repeat) for s in timed}
        applied = build(
            dsn, session, recommendations, echo=echo, lock_timeout_ms=build_lock_timeout_ms
        )
        after = {s.key: time_statement(reader, s.text, s.params, repeat) for s in timed}
    finally:
        reader.close()
    timings = [Timing(s, before[s.key], after[s.key]) for s in timed]
    return Verification(applied=applied, timings=timings, skipped=skipped)

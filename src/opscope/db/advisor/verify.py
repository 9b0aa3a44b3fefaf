"""`--verify --apply` (for staging): build the chosen indexes for real, and measure.

The SQL is printed before it runs, indexes are built with CREATE INDEX CONCURRENTLY in a
writable session (the only writes opscope ever makes, and only behind --apply) without a lock
or statement timeout, since a concurrent build waits for every open transaction that wrote to
the table; a build that fails anyway (cancelled, connection lost) leaves an INVALID index
behind, which is dropped again before the error is reported. Each index is built under a
temporary `opscope_verify_` name and renamed once valid, so an INVALID index a killed run
leaves is recognisably opscope's. SIGINT and SIGTERM cancel the running build on the server
and drop what it left (exit 130 / 143); the indexes already built stay, as --apply promises
for a run that completes. Then the statements the advisor said they help are timed before
and after with EXPLAIN ANALYZE in the read-only session: only statements that are read-only
and whose text has real values (no $n parameters: a pg_qualstats example, or a statement
without constants) can be timed.
"""

from __future__ import annotations

import contextlib
import signal
import statistics
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from opscope.db.advisor.model import Recommendation, WorkloadStatement
from opscope.db.connection import SqlRunner, TargetConnectionError, connect
from opscope.db.naming import BUILD_PREFIX, unique_name
from opscope.db.plans.explain import ExplainFailed, explain, inspect_statement
from opscope.db.settings import SessionSettings
from opscope.errors import first_line
from opscope.sqltext import qualified


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


class Interrupted(Exception):
    """SIGINT or SIGTERM stopped `--verify`; the message is one line and says what was
    cancelled, dropped and kept, and what is left with the statement that drops it."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """128 + the signal, as a shell reports a process the signal ended: 130, 143."""
        return 128 + self.signum


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt: psycopg cancels the statement
    it is waiting for on a KeyboardInterrupt, so both signals take one path."""


def _signal_of(exc: KeyboardInterrupt) -> int:
    return int(signal.SIGTERM if isinstance(exc, _Terminated) else signal.SIGINT)


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While inside, SIGTERM interrupts like Ctrl-C (only the main thread gets signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class Progress:
    """How far `build` got, so an interruption can say what it leaves."""

    #: indexes built, valid and renamed: what --apply keeps
    built: list[str] = field(default_factory=list)
    #: what runs when no build does, for the message
    phase: str = "before any index was built"


def drop_invalid(conn: psycopg.Connection[Any], schema: str, name: str) -> None:
    """Drop what a failed CREATE INDEX CONCURRENTLY left (an INVALID index), if anything.

    No lock timeout: the drop, too, waits for the transactions that still see the table."""
    conn.execute("SELECT /* opscope */ set_config('lock_timeout', '0', false)")
    conn.execute(
        sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}.{}").format(
            sql.Identifier(schema), sql.Identifier(name)
        )
    )


def index_state(conn: psycopg.Connection[Any], schema: str, name: str) -> bool | None:
    """True for a valid index of that name, False for an INVALID one, None for none."""
    rows = SqlRunner(conn).fetch("index_state", {"schema": schema, "name": name})
    return bool(rows[0]["valid"]) if rows else None


def _drop_statement(schema: str, name: str) -> str:
    return f"DROP INDEX CONCURRENTLY IF EXISTS {qualified(schema, name)};"


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


def _quiet_session(
    dsn: str, session: SessionSettings, writer: psycopg.Connection[Any]
) -> psycopg.Connection[Any]:
    """A session to clean up from once a signal stopped the build: the build's own when
    psycopg cancelled its statement (it does so on KeyboardInterrupt while it waits),
    else, once the statement is cancelled here, a new one."""
    if not writer.closed and writer.info.transaction_status == TransactionStatus.IDLE:
        return writer
    if not writer.closed:
        # the signal came between psycopg's waits, so the statement may still run; if this
        # cancel fails too, the new session's DROP waits for the build to end
        with contextlib.suppress(Exception):
            writer.cancel_safe(timeout=5.0)
        writer.close()
    return connect(dsn, session, writable=True)


@dataclass(frozen=True)
class _Step:
    schema: str
    temporary: str
    final: str
    #: the final name was free before the step: if it exists now, this step made it
    final_was_free: bool


def _stop_step(
    dsn: str,
    session: SessionSettings,
    writer: psycopg.Connection[Any],
    step: _Step,
    progress: Progress,
    echo: Callable[[str], None],
) -> str:
    """After a signal during a build: cancel it, drop what it left; says what happened."""
    target = f"{step.schema}.{step.final}"
    temporary = f"{step.schema}.{step.temporary}"
    drop = _drop_statement(step.schema, step.temporary)
    conn: psycopg.Connection[Any] | None = None
    try:
        conn = _quiet_session(dsn, session, writer)
        state = index_state(conn, step.schema, step.temporary)
        if state is None:
            if step.final_was_free and index_state(conn, step.schema, step.final):
                # the rename had committed when the signal came: a finished build
                progress.built.append(target)
                return f"the build of {target} had just finished"
            return f"the build of {target} had not started; nothing to drop"
        left = "INVALID index" if state is False else "finished but not yet renamed index"
        echo(
            f"interrupted: dropping the {left} {temporary} "
            "(waits for the transactions open on its table; interrupt again to leave it)"
        )
        drop_invalid(conn, step.schema, step.temporary)
        return f"cancelled the build of {target} and dropped the {left} it left ({temporary})"
    except KeyboardInterrupt:
        return (
            f"interrupted again while dropping the half-built {temporary}, which may remain "
            f"INVALID: run {drop}"
        )
    except (psycopg.Error, TargetConnectionError) as exc:
        return (
            f"cancelled the build of {target}, but dropping the half-built {temporary} failed "
            f"({first_line(exc)}): run {drop}"
        )
    finally:
        if conn is not None and conn is not writer:
            conn.close()


def _kept(progress: Progress) -> str:
    if not progress.built:
        return ""
    return (
        f"; kept {'the index' if len(progress.built) == 1 else 'the indexes'} already built "
        f"(--apply keeps what it built): {', '.join(progress.built)}"
    )


def build(
    dsn: str,
    session: SessionSettings,
    recommendations: Sequence[Recommendation],
    *,
    echo: Callable[[str], None],
    lock_timeout_ms: int = 0,
    progress: Progress | None = None,
) -> list[str]:
    """Build the recommended indexes concurrently; the statements run, as printed.

    Each index is built under a temporary BUILD_PREFIX name and renamed once valid, so an
    index an interruption left behind is recognisably opscope's (see invalid_index). On
    SIGINT (and SIGTERM, inside sigterm_interrupts) the running build is cancelled and what
    it left dropped, then Interrupted is raised; indexes already built are kept."""
    progress = progress if progress is not None else Progress()
    # a concurrent build waits for open transactions and can take long: by default neither
    # a statement nor a lock timeout, which would leave an INVALID index half-way
    build_session = session.model_copy(
        update={"statement_timeout_ms": 0, "lock_timeout_ms": lock_timeout_ms}
    )
    applied: list[str] = []
    writer = connect(dsn, build_session, writable=True)
    try:
        if writer.info.server_version >= 140000:
            # if opscope dies (SIGKILL), the server stops the build within a second instead
            # of finishing it unwatched: what is left is one INVALID index, named as ours.
            # A server on a platform without the kernel support refuses the setting: the
            # builds then go on without it
            with contextlib.suppress(psycopg.errors.InvalidParameterValue):
                writer.execute(
                    "SELECT /* opscope */ "
                    "set_config('client_connection_check_interval', '1s', false)"
                )
        echo(
            f"building with CREATE INDEX CONCURRENTLY under a temporary {BUILD_PREFIX} name, "
            "renamed once valid"
            + ("" if lock_timeout_ms else ", no lock or statement timeout")
            + ": each build waits for the transactions open on its table to finish"
        )
        runner = SqlRunner(writer)
        for rec in recommendations:
            cand = rec.candidate
            name = rec.name
            taken = {r["name"] for r in runner.fetch("relation_names", {"schema": cand.schema})}
            step = _Step(
                cand.schema,
                unique_name(BUILD_PREFIX + cand.name_stem(), taken),
                name,
                final_was_free=name not in taken,
            )
            create = cand.ddl(concurrently=True, name=step.temporary)
            rename = sql.SQL("ALTER INDEX {}.{} RENAME TO {}").format(
                sql.Identifier(cand.schema), sql.Identifier(step.temporary), sql.Identifier(name)
            )
            texts = [create.as_string(writer) + ";", rename.as_string(writer) + ";"]
            for text in texts:
                echo(f"applying: {text}")
            try:
                writer.execute(create)
                writer.execute(rename)
            except psycopg.Error as exc:
                reason = first_line(exc)
                temporary = f"{cand.schema}.{step.temporary}"
                try:
                    _cleanup(dsn, build_session, writer, cand.schema, step.temporary)
                except (psycopg.Error, TargetConnectionError) as cleanup:
                    raise VerifyFailed(
                        f"building {cand.schema}.{name} failed: {reason}; dropping the "
                        f"INVALID index it left ({temporary}) failed too "
                        f"({first_line(cleanup)}): run "
                        f"{_drop_statement(cand.schema, step.temporary)}{_kept(progress)}"
                    ) from None
                raise VerifyFailed(
                    f"building {cand.schema}.{name} failed: {reason} (the INVALID index it "
                    f"left, {temporary}, was dropped){_kept(progress)}"
                ) from None
            except KeyboardInterrupt as exc:
                what = _stop_step(dsn, build_session, writer, step, progress, echo)
                raise Interrupted(
                    _signal_of(exc),
                    f"interrupted by {signal.Signals(_signal_of(exc)).name}: {what}"
                    f"{_kept(progress)}",
                ) from None
            progress.built.append(f"{cand.schema}.{name}")
            progress.phase = "between builds"
            applied.extend(texts)
        progress.phase = "while analyzing the tables built on"
        tables = dict.fromkeys((r.candidate.schema, r.candidate.table) for r in recommendations)
        for schema, table in tables:
            writer.execute(
                sql.SQL("ANALYZE /* opscope */ {}.{}").format(
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
    progress = Progress()
    with sigterm_interrupts():
        try:
            reader = connect(dsn, session)
            try:
                before = {s.key: time_statement(reader, s.text, s.params, repeat) for s in timed}
                applied = build(
                    dsn,
                    session,
                    recommendations,
                    echo=echo,
                    lock_timeout_ms=build_lock_timeout_ms,
                    progress=progress,
                )
                progress.phase = "while timing the statements with the new indexes"
                after = {s.key: time_statement(reader, s.text, s.params, repeat) for s in timed}
            finally:
                reader.close()
        except KeyboardInterrupt as exc:
            # outside a build (build() handles its own): nothing half-made to drop
            raise Interrupted(
                _signal_of(exc),
                f"interrupted by {signal.Signals(_signal_of(exc)).name} {progress.phase}; "
                f"nothing half-built to drop{_kept(progress)}",
            ) from None
    timings = [Timing(s, before[s.key], after[s.key]) for s in timed]
    return Verification(applied=applied, timings=timings, skipped=skipped)

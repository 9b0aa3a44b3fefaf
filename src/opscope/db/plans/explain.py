"""Running EXPLAIN on a watched database without changing it.

EXPLAIN ANALYZE executes the statement, so it is only used when the statement is provably
read-only: a single plain SELECT with no data-modifying CTE, no row locks, no SELECT INTO, and
nothing it can reach (functions, casts, operators, domains, views, policies: see vouch.py)
that is not known to be read-only. Everything else is planned without running it. Statements
normalized by pg_stat_statements carry ``$n`` parameters: PostgreSQL 16 plans them with
``EXPLAIN (GENERIC_PLAN)``; on 15 we ``PREPARE`` them and explain ``EXECUTE`` under
``plan_cache_mode = force_generic_plan``, or with real values when they are known.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from pglast import ast, parse_sql
from psycopg import pq, sql

from opscope.db.connection import load_sql
from opscope.db.plans.model import Plan, parse_plan
from opscope.db.plans.reach import Names, names_in
from opscope.db.plans.reach import children as children
from opscope.db.plans.reach import walk as walk
from opscope.db.plans.vouch import ReadOnly, planner_would_run, why_not_run
from opscope.db.relations import referenced_tables
from opscope.errors import first_line

GENERIC_PLAN_VERSION = 160000

_DATA_MODIFYING = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)
_EXPLAINABLE = (ast.SelectStmt, *_DATA_MODIFYING)


class ExplainFailed(Exception):
    """The statement could not be explained; the message is one line, and `sqlstate` the
    server's code when the server refused it."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@dataclass(frozen=True)
class StatementShape:
    """What PostgreSQL's parser tells us about a statement before we plan it."""

    kind: str
    #: True when nothing in the parse tree can write; functions still need vouching
    read_only: bool
    #: why it is not read-only, for messages
    reason: str
    #: the highest $n in the text: how many parameters EXECUTE must pass
    param_count: int
    #: the relations, types, functions and operators it names, for the vouching
    names: Names = field(default_factory=Names)


def parse_single(query: str) -> ast.Node:
    """The one statement in `query`; several statements, or none, are refused: the text is
    sent after EXPLAIN, and a second statement would run unexplained."""
    try:
        stmts = parse_sql(query)
    except Exception as exc:  # pglast's ParseError, and odd input that trips its lexer
        raise ExplainFailed(f"cannot parse the statement: {first_line(exc)}") from None
    if len(stmts) != 1:
        raise ExplainFailed(f"expected one statement, got {len(stmts)}")
    stmt = stmts[0].stmt
    if not isinstance(stmt, _EXPLAINABLE):
        raise ExplainFailed(
            f"only SELECT, INSERT, UPDATE, DELETE and MERGE can be explained, not "
            f"{type(stmt).__name__}"
        )
    return stmt


def inspect_statement(query: str) -> StatementShape:
    stmt = parse_single(query)
    kind = type(stmt).__name__.removesuffix("Stmt").lower()
    reason = ""
    params = 0
    for node in walk(stmt):
        if isinstance(node, ast.ParamRef):
            params = max(params, node.number or 0)
        if reason:
            continue
        if isinstance(node, _DATA_MODIFYING):
            reason = f"{type(node).__name__.removesuffix('Stmt').upper()} writes rows"
            if node is not stmt:
                reason = "it has a data-modifying WITH clause"
        elif isinstance(node, ast.SelectStmt) and node.lockingClause:
            reason = "it locks rows (FOR UPDATE/SHARE)"
        elif isinstance(node, ast.SelectStmt) and node.intoClause:
            reason = "SELECT INTO creates a table"
    if not reason and kind != "select":
        reason = f"{kind.upper()} writes rows"
    return StatementShape(
        kind=kind,
        read_only=not reason,
        reason=reason,
        param_count=params,
        names=names_in(stmt),
    )


@dataclass(frozen=True)
class ExplainResult:
    plan: Plan
    shape: StatementShape
    #: why ANALYZE was not used, when it was asked for or would have been automatic
    note: str = ""


_names = itertools.count(1)


# pg_stat_statements normalizes a typed literal (interval '1 day') to "interval $2", which
# PostgreSQL's parser does not accept; the cast form means the same and plans.
_TYPED_PARAM = re.compile(
    r"\b(interval|date|timestamptz|timetz|time(?:stamp)?(?:\s+with(?:out)?\s+time\s+zone)?)"
    r"\s+(\$\d+)\b",
    re.IGNORECASE,
)


def plannable(query: str) -> str:
    """`query` with typed-literal parameters written as casts, so the server can plan it."""
    return _TYPED_PARAM.sub(lambda m: f"{m.group(2)}::{m.group(1)}", query)


def explain(
    conn: psycopg.Connection[Any],
    query: str,
    *,
    analyze: bool | None = None,
    params: Sequence[Any] | None = None,
    read_only: ReadOnly | None = None,
) -> ExplainResult:
    """Plan `query` (and run it, when that is safe and wanted) in `conn`.

    `analyze`: True asks for ANALYZE (refused, with a note, unless the statement is read-only),
    False never runs it, None runs it when it is safe and all parameter values are known.
    `params`: values for $1..$n, when they are known (from logs or pg_qualstats).
    `read_only`: the functions and extensions the user vouches for (config).
    """
    query = plannable(query)
    shape = inspect_statement(query)
    values = list(params) if params is not None else None
    if values is not None and len(values) < shape.param_count:
        raise ExplainFailed(f"{shape.param_count} parameters, {len(values)} values given")
    unknown_params = shape.param_count > 0 and values is None
    note = ""
    run = analyze is not False
    if run and not shape.read_only:
        note = f"not run (no ANALYZE): {shape.reason}"
        run = False
    if run and unknown_params:
        note = "not run (no ANALYZE): parameter values are not known, showing the generic plan"
        run = False
    vouch = _Vouch(shape.names, read_only or ReadOnly())
    try:
        _refuse_if_the_planner_would_run(conn, query, shape, vouch.read_only, "")
        document, note = _plan(conn, query, values, shape.param_count, run, note, vouch)
    except psycopg.errors.UndefinedTable:
        # The application may run with another search_path than ours (ALTER ROLE ... SET
        # search_path); when each unqualified name exists in exactly one schema, that is
        # where the application found it.
        path = _guess_search_path(conn, query)
        if path is None:
            raise ExplainFailed(
                "EXPLAIN failed: a table it names is not on opscope's search_path, and its "
                "schema cannot be told for sure"
            ) from None
        with _search_path(conn, path):
            _refuse_if_the_planner_would_run(conn, query, shape, vouch.read_only, ",".join(path))
            try:
                document, note = _plan(conn, query, values, shape.param_count, run, note, vouch)
            except psycopg.Error as exc:
                raise ExplainFailed(f"EXPLAIN failed: {first_line(exc)}", exc.sqlstate) from None
        note = (note + "; " if note else "") + f"planned with search_path {', '.join(path)}"
    except psycopg.Error as exc:
        raise ExplainFailed(f"EXPLAIN failed: {first_line(exc)}", exc.sqlstate) from None
    plan = parse_plan(document, generic=unknown_params)
    return ExplainResult(plan=plan, shape=shape, note=note if analyze is not False else "")


# the advisor explains one statement once per candidate index: its closure is read once per
# session (and search_path)
_planner_checked: weakref.WeakKeyDictionary[
    psycopg.Connection[Any], dict[tuple[str, ReadOnly, str], str | None]
] = weakref.WeakKeyDictionary()


def _refuse_if_the_planner_would_run(
    conn: psycopg.Connection[Any], query: str, shape: StatementShape, read_only: ReadOnly, path: str
) -> None:
    """Planning alone may run a function (see vouch.planner_would_run): such a statement is
    not planned, whatever was asked."""
    seen = _planner_checked.setdefault(conn, {})
    key = (query, read_only, path)
    if key not in seen:
        seen[key] = planner_would_run(conn, shape.names, read_only)
    danger = seen[key]
    if danger:
        raise ExplainFailed(f"not explained, not even planned: {danger}")


@dataclass(frozen=True)
class _Vouch:
    names: Names
    read_only: ReadOnly


def _plan(
    conn: psycopg.Connection[Any],
    query: str,
    values: list[Any] | None,
    count: int,
    run: bool,
    note: str,
    vouch: _Vouch,
) -> tuple[Any, str]:
    options = [sql.SQL("FORMAT JSON"), sql.SQL("VERBOSE")]
    # plan first, without running anything; the vouching runs on the search_path the plan
    # was made with, and takes the plan's own names too (views and policies expanded)
    document = _document(conn, query, options, values, count, False)
    if run:
        reason = why_not_run(conn, vouch.names, document, vouch.read_only)
        if reason:
            note = f"not run (no ANALYZE): {reason}"
            run = False
    if run:
        analyzed = [*options, sql.SQL("ANALYZE"), sql.SQL("BUFFERS")]
        try:
            document = _document(conn, query, analyzed, values, count, True)
        except psycopg.errors.QueryCanceled:
            # too slow to run under our statement_timeout: the plan alone still helps
            note = "not run to the end: ANALYZE hit statement_timeout, showing the plan"
    return document, note


def _guess_search_path(conn: psycopg.Connection[Any], query: str) -> list[str] | None:
    names = sorted({name for schema, name in referenced_tables(query) if schema is None})
    if not names:
        return None
    text = load_sql("relation_schemas", conn.info.server_version)
    rows = conn.execute(sql.SQL(text), {"names": names}).fetchall()
    found = {row[0]: list(row[1]) for row in rows}
    path: list[str] = []
    for name in names:
        schemas = found.get(name, [])
        if len(schemas) != 1:
            return None
        if schemas[0] not in path:
            path.append(schemas[0])
    return [*path, "public"] if "public" not in path else path


@contextlib.contextmanager
def _search_path(conn: psycopg.Connection[Any], path: Sequence[str]) -> Iterator[None]:
    row = conn.execute("SELECT /* opscope */ current_setting('search_path')").fetchone()
    previous = str(row[0]) if row else "public"
    value = sql.SQL(", ").join(sql.Identifier(p) for p in path).as_string(conn)
    conn.execute("SELECT /* opscope */ set_config('search_path', %s, false)", [value])
    try:
        yield
    finally:
        conn.execute("SELECT /* opscope */ set_config('search_path', %s, false)", [previous])


def _document(
    conn: psycopg.Connection[Any],
    query: str,
    options: Sequence[sql.Composable],
    values: list[Any] | None,
    count: int,
    run: bool,
) -> Any:
    if count == 0:
        return _explain_text(conn, query, options, run)
    if values is None and conn.info.server_version >= GENERIC_PLAN_VERSION:
        return _explain_generic(conn, query, options)
    return _explain_prepared(conn, query, options, values, count, run)


def _explain_generic(
    conn: psycopg.Connection[Any], query: str, options: Sequence[sql.Composable]
) -> Any:
    """EXPLAIN (GENERIC_PLAN) of a statement with $n placeholders (16+), never run.

    Over the extended protocol its placeholders become parameters the Bind must fill, and the
    planner folds whatever values are bound (a NULL makes the plan a constant false), so it
    is sent as a simple query. That protocol would run a second statement smuggled past our
    parse; so the server first parses the very same bytes, in the same transaction and under
    the same settings, as one unnamed prepared statement (Parse only: nothing is bound or
    executed), which it refuses for more than one statement.
    """
    head = sql.SQL("EXPLAIN /* opscope */ ({}) ").format(
        sql.SQL(", ").join([*options, sql.SQL("GENERIC_PLAN")])
    )
    text = (head + sql.SQL(query)).as_bytes(conn)
    with conn.transaction(force_rollback=True):
        parsed = conn.pgconn.prepare(b"", text)
        if parsed.status != pq.ExecStatus.COMMAND_OK:
            raise psycopg.errors.error_from_result(parsed, encoding=conn.info.encoding)
        row = conn.execute(text, prepare=False).fetchone()
    return row[0] if row else None


def _explain_text(
    conn: psycopg.Connection[Any], query: str, options: Sequence[sql.Composable], run: bool
) -> Any:
    # The statement is text by nature; it was parsed above as exactly one explainable
    # statement, and the session is read-only.
    head = sql.SQL("EXPLAIN /* opscope */ ({}) ").format(sql.SQL(", ").join(options))
    stmt = head + sql.SQL(query)
    # ANALYZE runs the statement: inside a transaction that is always rolled back
    # binary=True sends it over the extended protocol, which takes exactly one statement:
    # a second one smuggled past our parse (the server lexes strings by its own settings)
    # is refused by the server itself
    with conn.transaction(force_rollback=True):
        row = conn.execute(stmt, binary=True).fetchone()
    return row[0] if row else None


def _explain_prepared(
    conn: psycopg.Connection[Any],
    query: str,
    options: Sequence[sql.Composable],
    values: list[Any] | None,
    count: int,
    run: bool,
) -> Any:
    name = sql.Identifier(f"opscope_explain_{next(_names)}")
    args = [sql.Literal(v) for v in values[:count]] if values is not None else [sql.NULL] * count
    # a generic plan ignores the (NULL) arguments; with real values, a custom plan uses them
    mode = "force_generic_plan" if values is None else "force_custom_plan"
    conn.execute(sql.SQL("PREPARE /* opscope */ {} AS ").format(name) + sql.SQL(query), binary=True)
    try:
        with conn.transaction(force_rollback=True):
            conn.execute("SELECT /* opscope */ set_config('plan_cache_mode', %s, true)", [mode])
            row = conn.execute(
                sql.SQL("EXPLAIN /* opscope */ ({}) EXECUTE {}({})").format(
                    sql.SQL(", ").join(options), name, sql.SQL(", ").join(args)
                )
                if count
                else sql.SQL("EXPLAIN /* opscope */ ({}) EXECUTE {}").format(
                    sql.SQL(", ").join(options), name
                )
            ).fetchone()
    finally:
        # prepared statements outlive transactions: remove it whatever happened
        conn.execute(sql.SQL("DEALLOCATE /* opscope */ {}").format(name))
    return row[0] if row else None

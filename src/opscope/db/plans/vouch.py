"""May EXPLAIN ANALYZE run this statement? Decided from the server's own plan.

The statement text does not show everything that runs: a view hides its functions, an
operator hides the function behind it, `t.f` calls `f(t)`. EXPLAIN VERBOSE (which does not
run anything) prints every expression the executor would evaluate, views and row-level
security expanded. We parse each with PostgreSQL's parser and vouch for every function and
operator in it; anything we cannot read or vouch for means no ANALYZE.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from pglast import ast, parse_sql
from pglast.enums.parsenodes import A_Expr_Kind
from psycopg import sql

from opscope.db.connection import load_sql

#: functions known not to write, whatever pg_proc says about their volatility (random() and
#: the clock functions are volatile only because their result changes); pg_catalog's only
HARMLESS_VOLATILE = (
    "random",
    "clock_timestamp",
    "timeofday",
    "statement_timestamp",
    "gen_random_uuid",
    "now",
    "transaction_timestamp",
)

#: plan properties that hold expressions the executor evaluates
_EXPRESSION_KEYS = frozenset(
    {
        "Output",
        "Filter",
        "Join Filter",
        "Hash Cond",
        "Merge Cond",
        "Index Cond",
        "Recheck Cond",
        "One-Time Filter",
        "Function Call",
        "Table Function Call",
        "TID Cond",
        "Cache Key",
        "Hash Key",
        "Group Key",
        "Run Condition",
        "Order By",
        "Conflict Filter",
    }
)
_SORT_KEYS = frozenset({"Sort Key", "Presorted Key"})
#: nodes whose work we cannot see into, or that change things
_REFUSED_NODES = {
    "Foreign Scan": "it reads a foreign table (the remote side may do anything)",
    "Custom Scan": "it uses a custom scan provider",
    "ModifyTable": "it writes rows",
    "LockRows": "it locks rows",
}
# references to sub-plans print as "(SubPlan 1)", "(hashed SubPlan 2)", "(InitPlan 1).col1";
# window clauses as "OVER (?)" (15) or "OVER w1" (16+): none of them parse as SQL
_PLAN_REFS = re.compile(r"\((?:hashed )?(?:SubPlan|InitPlan) \d+\)(?:\.col\d+)?")
_WINDOW = re.compile(r"\bOVER\s+(?:\(\?\)|w\d+)")


_BETWEEN = frozenset(
    {
        A_Expr_Kind.AEXPR_BETWEEN,
        A_Expr_Kind.AEXPR_NOT_BETWEEN,
        A_Expr_Kind.AEXPR_BETWEEN_SYM,
        A_Expr_Kind.AEXPR_NOT_BETWEEN_SYM,
    }
)


@dataclass
class PlanObjects:
    functions: set[tuple[str, str]] = field(default_factory=set)
    operators: set[tuple[str, str]] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _qualified(names: Any) -> tuple[str, str] | None:
    parts = [n.sval for n in names or () if isinstance(n, ast.String)]
    if not parts:
        return None
    return ("" if len(parts) == 1 else str(parts[-2]), str(parts[-1]))


def _collect(expression: str, sort_key: bool, into: PlanObjects) -> None:
    text = _WINDOW.sub("OVER ()", _PLAN_REFS.sub("NULL", expression))
    wrapped = f"SELECT 1 ORDER BY {text}" if sort_key else f"SELECT {text}"
    try:
        stmts = parse_sql(wrapped)
    except Exception:  # pglast's ParseError: an expression we cannot read is not vouched for
        into.problems.append(f"cannot read the plan expression {expression[:80]!r}")
        return
    stack: list[Any] = [s.stmt for s in stmts]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FuncCall):
            name = _qualified(node.funcname)
            if name:
                into.functions.add(name)
        elif isinstance(node, ast.A_Expr):
            if node.kind in _BETWEEN:
                # BETWEEN is sugar for >= and <= (deparsed plans spell those out anyway)
                into.operators.update({("", ">="), ("", "<=")})
            else:
                name = _qualified(node.name)
                if name:
                    into.operators.add(name)
        if isinstance(node, ast.Node):
            stack.extend(getattr(node, attr, None) for attr in node)
        elif isinstance(node, tuple | list):
            stack.extend(node)


def plan_objects(document: Any) -> PlanObjects:
    """Functions, operators and refused node types in an EXPLAIN (VERBOSE, FORMAT JSON)
    document."""
    found = PlanObjects()
    stack: list[Any] = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        kind = node.get("Node Type")
        if isinstance(kind, str) and kind in _REFUSED_NODES:
            found.problems.append(_REFUSED_NODES[kind])
        for key, value in node.items():
            if key in _EXPRESSION_KEYS or key in _SORT_KEYS:
                for text in _strings(value):
                    _collect(text, key in _SORT_KEYS, found)
            elif isinstance(value, dict | list):
                stack.append(value)
    return found


def why_not_run(conn: psycopg.Connection[Any], document: Any) -> str | None:
    """None when every function and operator the plan evaluates is vouched for; otherwise
    the reason, for the note the user sees."""
    found = plan_objects(document)
    if found.problems:
        return found.problems[0]
    version = conn.info.server_version
    for what, sql_name, names in (
        ("function", "vouch_functions", found.functions),
        ("operator", "vouch_operators", found.operators),
    ):
        if not names:
            continue
        ordered = sorted(names)
        rows = conn.execute(
            sql.SQL(load_sql(sql_name, version)),
            {
                "schemas": [s for s, _ in ordered],
                "names": [n for _, n in ordered],
                "harmless": list(HARMLESS_VOLATILE),
            },
        ).fetchall()
        vouched = {(r[0], r[1]) for r in rows}
        bad = [f"{s}.{n}" if s else n for s, n in ordered if (s, n) not in vouched]
        if bad:
            return f"cannot vouch that {what} {', '.join(bad[:3])} only reads"
    return None

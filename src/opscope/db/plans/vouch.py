"""May EXPLAIN ANALYZE run this statement? Only when everything it can reach is known to be
read-only.

What runs is not what the text shows: a cast runs its function, a domain its CHECK
constraint, an operator its function, a view its query, a table its row-level security
policies, `t.f` calls `f(t)`; EXPLAIN prints most of these as `(x)::type` or not at all. So
we do not vouch by what EXPLAIN prints. From the names in the statement (and in its plan),
one catalog query (vouch_reach.sql) collects every function the executor could call through
any of those paths, and each must be known to be read-only:
- a built-in (builtins.py says which of PostgreSQL's own functions qualify),
- a function the user lists in `plans.read_only_functions`,
- or an immutable or stable function of an extension the user lists in
  `plans.read_only_extensions`.
Anything else, whatever volatility it declares (anyone can declare a writer IMMUTABLE), and
any foreign table, means the statement is planned without running it.
"""

from __future__ import annotations

import re
import weakref
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from pglast import parse_sql
from psycopg import sql

from opscope.db.connection import load_sql
from opscope.db.plans.builtins import DENIED, HARMLESS
from opscope.db.plans.reach import Names, names_in
from opscope.db.plans.signature import parse_function_entry
from opscope.errors import first_line


@dataclass(frozen=True)
class ReadOnly:
    """What the user vouches for, from the config."""

    #: `schema.name` (every overload) or `schema.name(type, ...)`
    functions: tuple[str, ...] = ()
    #: extensions whose immutable and stable functions are trusted
    extensions: tuple[str, ...] = ()


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


@dataclass
class PlanNames:
    names: Names
    problems: list[str]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _expression_names(expression: str, sort_key: bool, into: PlanNames) -> None:
    text = _WINDOW.sub("OVER ()", _PLAN_REFS.sub("NULL", expression))
    wrapped = f"SELECT 1 ORDER BY {text}" if sort_key else f"SELECT {text}"
    try:
        stmts = parse_sql(wrapped)
    except Exception:  # pglast's ParseError: an expression we cannot read is not vouched for
        into.problems.append(f"cannot read the plan expression {expression[:80]!r}")
        return
    for s in stmts:
        into.names.update(names_in(s.stmt))


def plan_names(document: Any) -> PlanNames:
    """The names in an EXPLAIN (VERBOSE, FORMAT JSON) document: every expression the executor
    evaluates (views and row-level security expanded) and every relation scanned, plus the
    node types refused outright. They add to the statement's own names: more to check, never
    less."""
    found = PlanNames(Names(), [])
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
        relation = node.get("Relation Name")
        if isinstance(relation, str):
            found.names.relations.add((str(node.get("Schema") or ""), relation))
        for key, value in node.items():
            if key in _EXPRESSION_KEYS or key in _SORT_KEYS:
                for text in _strings(value):
                    _expression_names(text, key in _SORT_KEYS, found)
            elif isinstance(value, dict | list):
                stack.append(value)
    return found


@dataclass(frozen=True)
class _Allowed:
    oids: tuple[int, ...]
    #: entries that name no function: they allow nothing, and the note says so
    unmatched: tuple[str, ...]


# resolved once per connection: `analyze db` vouches for ten statements on one session
_allowed_cache: weakref.WeakKeyDictionary[psycopg.Connection[Any], dict[ReadOnly, _Allowed]] = (
    weakref.WeakKeyDictionary()
)


def _allowed(conn: psycopg.Connection[Any], read_only: ReadOnly) -> _Allowed:
    if not read_only.functions:
        return _Allowed((), ())
    per_conn = _allowed_cache.setdefault(conn, {})
    if read_only not in per_conn:
        oids: list[int] = []
        unmatched: list[str] = []
        text = sql.SQL(load_sql("vouch_allowlist", conn.info.server_version))
        for raw in read_only.functions:
            try:
                entry = parse_function_entry(raw)
            except ValueError:
                # the config refuses these; a caller's own list may not
                unmatched.append(raw)
                continue
            try:
                rows = conn.execute(
                    text,
                    {
                        "schema": entry.schema,
                        "name": entry.name,
                        "any_args": entry.args is None,
                        "args": list(entry.args or ()),
                    },
                    prepare=_NEVER_PREPARE,
                ).fetchall()
            except psycopg.Error:
                # a type the server cannot read: the entry allows nothing
                rows = []
            if rows:
                oids.extend(int(r[0]) for r in rows)
            else:
                unmatched.append(raw)
        per_conn[read_only] = _Allowed(tuple(oids), tuple(unmatched))
    return per_conn[read_only]


def _params(text: Names, plan: Names, read_only: ReadOnly, allowed: _Allowed) -> dict[str, Any]:
    relations = sorted(text.relations | plan.relations)
    types = sorted(text.types | plan.types | text.cast_targets | plan.cast_targets)
    calls = sorted(text.calls | plan.calls, key=lambda c: (c.schema, c.name, c.nargs, c.free))
    operators = sorted(text.operators | plan.operators, key=lambda o: (o.schema, o.name, o.free))
    return {
        "rel_schemas": [s for s, _ in relations],
        "rel_names": [n for _, n in relations],
        "rel_plan": [r not in text.relations for r in relations],
        "type_schemas": [s for s, _ in types],
        "type_names": [n for _, n in types],
        "type_plan": [t not in text.types for t in types],
        "type_target": [t in text.cast_targets or t in plan.cast_targets for t in types],
        "call_schemas": [c.schema for c in calls],
        "call_names": [c.name for c in calls],
        "call_nargs": [c.nargs for c in calls],
        "call_free": [c.free for c in calls],
        "call_plan": [c not in text.calls for c in calls],
        "op_schemas": [o.schema for o in operators],
        "op_names": [o.name for o in operators],
        "op_free": [o.free for o in operators],
        "op_plan": [o not in text.operators for o in operators],
        "mixing": text.mixing or plan.mixing,
        "harmless": sorted(HARMLESS),
        "denied": sorted(DENIED),
        "allowed": list(allowed.oids),
        "extensions": list(read_only.extensions),
    }


Node = tuple[str, int]

# psycopg prepares a query it has run five times; its cache answers a ROLLBACK (every EXPLAIN
# ends in one) with DEALLOCATE ALL, which would also drop explain.py's own PREPAREd statement
# in the middle of its use
_NEVER_PREPARE = False


@dataclass(frozen=True)
class _Edge:
    node: Node
    how: str


#: seeds from the statement's text: the note prefers a path from them to one that starts at
#: a literal's type or at a name only the plan shows
_TEXT_SEEDS = ("named", "call")
#: edges that a name in the text makes: the note's path starts there
_CALLS = ("call", "plan")


def _paths(rows: list[tuple[Any, ...]]) -> tuple[dict[Node, tuple[Node | None, str]], list[Node]]:
    """Shortest way from the statement to each object, and the objects in that order."""
    out: dict[Node, list[_Edge]] = {}
    seeds: list[_Edge] = []
    for kind, oid, from_kind, from_oid, how, *_ in rows:
        edge = _Edge((str(kind), int(oid)), str(how))
        if from_kind is None:
            seeds.append(edge)
        else:
            out.setdefault((str(from_kind), int(from_oid)), []).append(edge)
    came: dict[Node, tuple[Node | None, str]] = {}
    order: list[Node] = []
    queue: deque[Node] = deque()

    def visit(node: Node, source: Node | None, how: str) -> None:
        if node not in came:
            came[node] = (source, how)
            order.append(node)
            queue.append(node)

    for phase in (True, False):
        for seed in seeds:
            if (seed.how in _TEXT_SEEDS) == phase:
                visit(seed.node, None, seed.how)
        while queue:
            source = queue.popleft()
            for edge in out.get(source, ()):
                visit(edge.node, source, edge.how)
    return came, order


# objects worth naming on the way to the culprit; types and plain tables say little
_SHOWN = ("view ", "materialized view ", "cast ", "operator ", "policy ", "constraint ")


def _chain(node: Node, came: dict[Node, tuple[Node | None, str]], labels: dict[Node, str]) -> str:
    steps: list[str] = []
    source, how = came[node]
    # a name in the text reaches the object directly: that is a call, not a path
    while source is not None and how not in _CALLS:
        label = labels[source]
        # the type whose input or output function it is, is worth naming
        shown = source[0] == "func" or label.startswith(_SHOWN) or not steps
        if shown and (not steps or steps[-1] != label):
            steps.append(label)
        source, how = came[source]
    return " > ".join(reversed(steps))


def _path(node: Node, came: dict[Node, tuple[Node | None, str]]) -> list[Node]:
    out = [node]
    source = came[node][0]
    while source is not None:
        out.append(source)
        source = came[source][0]
    return out


def _labels(conn: psycopg.Connection[Any], nodes: list[Node]) -> dict[Node, str]:
    text = sql.SQL(load_sql("vouch_labels", conn.info.server_version))
    rows = conn.execute(
        text,
        {"kinds": [k for k, _ in nodes], "oids": [o for _, o in nodes]},
        prepare=_NEVER_PREPARE,
    ).fetchall()
    found = {(str(r[0]), int(r[1])): str(r[2]) for r in rows}
    # an object dropped meanwhile still needs a name
    return {n: found.get(n, f"{n[0]} {n[1]}") for n in nodes}


def _note(
    conn: psycopg.Connection[Any], rows: list[tuple[Any, ...]], allowed: _Allowed
) -> str | None:
    problems = {(str(r[0]), int(r[1])): str(r[5]) for r in rows if r[5]}
    if not problems:
        return None
    came, order = _paths(rows)
    bad = [n for n in order if n in problems]
    first = bad[0]
    labels = _labels(conn, list(dict.fromkeys([*_path(first, came), *bad[1:3]])))
    if problems[first] == "foreign":
        text = f"it reads {labels[first]} (the remote side may do anything)"
    else:
        chain = _chain(first, came, labels)
        culprit = f"{labels[first]}, which is not known to be read-only"
        text = f"{chain} uses {culprit}" if chain else f"it calls {culprit}"
    if len(bad) > 1:
        others = ", ".join(labels[n] for n in bad[1:3])
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        text += f" (also {others}{more})"
    for entry in allowed.unmatched:
        text += f"; read_only_functions entry {entry!r} matches no function"
    return text


def why_not_run(
    conn: psycopg.Connection[Any],
    statement: Names,
    document: Any,
    read_only: ReadOnly | None = None,
) -> str | None:
    """None when everything `statement` (with its plan `document`) can reach is known to be
    read-only; otherwise the reason, for the note the user sees. One catalog query, and a
    second one to name the objects when there is something to refuse."""
    read_only = read_only or ReadOnly()
    found = plan_names(document)
    if found.problems:
        return found.problems[0]
    try:
        allowed = _allowed(conn, read_only)
        text = sql.SQL(load_sql("vouch_reach", conn.info.server_version))
        with conn.transaction():
            # the estimates of a recursive query are huge: JIT would compile it for seconds
            conn.execute("SELECT /* opscope */ set_config('jit', 'off', true)", prepare=False)
            params = _params(statement, found.names, read_only, allowed)
            rows = conn.execute(text, params, prepare=_NEVER_PREPARE).fetchall()
            return _note(conn, rows, allowed)
    except psycopg.Error as exc:
        return f"cannot tell what it reaches ({first_line(exc)})"


def planner_would_run(
    conn: psycopg.Connection[Any], statement: Names, read_only: ReadOnly | None = None
) -> str | None:
    """Why even planning `statement` could run something not known to be read-only, or None.

    PostgreSQL's planner evaluates immutable and stable functions whose arguments are
    constants (to fold them, and to estimate selectivities), so a plain EXPLAIN of
    `SELECT f(1)` runs `f` when it only claims to be immutable. A statement that reaches such
    a function (through its text, a view, a policy, a cast, an operator...) is not planned
    at all. One catalog query for the closure, and one to read the volatility of what it
    refuses."""
    read_only = read_only or ReadOnly()
    try:
        allowed = _allowed(conn, read_only)
        text = sql.SQL(load_sql("vouch_reach", conn.info.server_version))
        with conn.transaction():
            conn.execute("SELECT /* opscope */ set_config('jit', 'off', true)", prepare=False)
            params = _params(statement, Names(), read_only, allowed)
            rows = conn.execute(text, params, prepare=_NEVER_PREPARE).fetchall()
        refused = sorted({int(r[1]) for r in rows if r[0] == "func" and r[5]})
        if not refused:
            return None
        found = conn.execute(
            sql.SQL(load_sql("vouch_planner", conn.info.server_version)),
            {"oids": refused},
            prepare=_NEVER_PREPARE,
        ).fetchall()
    except psycopg.Error as exc:
        if conn.broken:
            raise  # a lost link is not a verdict on the statement
        return f"cannot tell what it reaches ({first_line(exc)})"
    if not found:
        return None
    label, volatility = found[0]
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return (
        f"it reaches {label}{more}, declared {volatility} but not known to be read-only, "
        "which the planner itself may run"
    )

"""What a statement names, from PostgreSQL's own parser (pglast): the relations, types,
function calls and operators the catalog query of vouch.py starts from.

The parse tree is untyped, so a name stands for every object the server could resolve it to
(any overload, on any schema of the search_path); the catalog keeps the candidates that the
types the statement can produce make possible. Some objects are reached without a name in
the text: attribute notation (`t.f` calls `f(t)`), `BETWEEN` (>= and <=), `JOIN ... USING`,
`CASE x WHEN` and `IN` (=). Those are collected here too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pglast import ast
from pglast.enums.parsenodes import A_Expr_Kind


def children(node: Any) -> Iterator[Any]:
    """Direct children of a pglast AST node (nodes and lists of nodes)."""
    if isinstance(node, ast.Node):
        for name in node:
            value = getattr(node, name, None)
            if isinstance(value, ast.Node | tuple | list):
                yield value
    elif isinstance(node, tuple | list):
        yield from node


def walk(node: Any) -> Iterator[ast.Node]:
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, ast.Node):
            yield cur
        stack.extend(children(cur))


@dataclass(frozen=True)
class Call:
    """A call site: `schema` is "" when the name is unqualified (the search_path decides)."""

    schema: str
    name: str
    #: how many arguments it passes, for the overloads that can take them
    nargs: int
    #: True when the call site does not fix an argument's type (none at all, a string
    #: literal, NULL, $n): then any overload of that arity may be chosen, whatever the
    #: types the statement produces
    free: bool


@dataclass(frozen=True)
class OperatorUse:
    schema: str
    name: str
    #: no operand has a type of its own (literals, NULL, $n): any operator of that name
    free: bool


@dataclass
class Names:
    relations: set[tuple[str, str]] = field(default_factory=set)
    types: set[tuple[str, str]] = field(default_factory=set)
    #: types an expression of some other type is cast to (`x::mood`, `mood(x)`); a
    #: literal's cast (`'ok'::mood`) only runs the type's input function
    cast_targets: set[tuple[str, str]] = field(default_factory=set)
    calls: set[Call] = field(default_factory=set)
    operators: set[OperatorUse] = field(default_factory=set)
    #: a construct that chooses a common type for its inputs (CASE, COALESCE, IN lists,
    #: UNION, ...), converting any of them with an implicit cast
    mixing: bool = False

    def update(self, other: Names) -> None:
        self.relations |= other.relations
        self.types |= other.types
        self.cast_targets |= other.cast_targets
        self.calls |= other.calls
        self.operators |= other.operators
        self.mixing |= other.mixing


_BETWEEN = frozenset(
    {
        A_Expr_Kind.AEXPR_BETWEEN,
        A_Expr_Kind.AEXPR_NOT_BETWEEN,
        A_Expr_Kind.AEXPR_BETWEEN_SYM,
        A_Expr_Kind.AEXPR_NOT_BETWEEN_SYM,
    }
)
# BETWEEN is sugar for >= AND <=, NOT BETWEEN for < OR >
_BETWEEN_OPERATORS = (">=", "<=", "<", ">")
#: parse nodes whose inputs PostgreSQL converts to a common type (select_common_type)
_COMMON_TYPE = (ast.CaseExpr, ast.CoalesceExpr, ast.MinMaxExpr, ast.A_ArrayExpr, ast.XmlExpr)


def qualified(names: Sequence[Any] | None) -> tuple[str, str] | None:
    """(schema or "", name) of a dotted name list; a catalog prefix is ignored."""
    parts = [str(n.sval) for n in names or () if isinstance(n, ast.String)]
    if not parts:
        return None
    return ("" if len(parts) == 1 else parts[-2], parts[-1])


def _untyped(node: Any) -> bool:
    """Whether the server infers this expression's type from where it is used."""
    if isinstance(node, ast.NamedArgExpr):
        return _untyped(node.arg)
    if isinstance(node, ast.A_Const):
        return bool(node.isnull) or isinstance(node.val, ast.String)
    return isinstance(node, ast.ParamRef)


def _all_untyped(*operands: Any) -> bool:
    flat: list[Any] = []
    for item in operands:
        if isinstance(item, tuple | list):
            flat.extend(item)
        elif item is not None:
            flat.append(item)
    return all(_untyped(x) for x in flat)


def names_in(tree: Any) -> Names:
    """Every name in a parse tree (a statement, or an expression wrapped in one)."""
    found = Names()
    for node in walk(tree):
        if isinstance(node, _COMMON_TYPE) or _sets_common_type(node):
            found.mixing = True
        if isinstance(node, ast.RangeVar) and node.relname:
            found.relations.add((str(node.schemaname or ""), str(node.relname)))
        elif isinstance(node, ast.TypeName):
            name = qualified(node.names)
            if name:
                found.types.add(name)
        elif isinstance(node, ast.TypeCast) and not _untyped(node.arg):
            name = qualified(node.typeName.names if node.typeName else None)
            if name:
                found.cast_targets.add(name)
        elif isinstance(node, ast.FuncCall):
            _call(node, found)
        elif isinstance(node, ast.A_Expr):
            _operator(node, found)
        elif isinstance(node, ast.SubLink) and node.operName:
            name = qualified(node.operName)
            if name:
                found.operators.add(OperatorUse(*name, free=_untyped(node.testexpr)))
        elif isinstance(node, ast.SortBy) and node.useOp:
            name = qualified(node.useOp)
            if name:
                found.operators.add(OperatorUse(*name, free=False))
        elif isinstance(node, ast.JoinExpr) and (node.usingClause or node.isNatural):
            found.operators.add(OperatorUse("", "=", free=False))
        elif isinstance(node, ast.CaseExpr) and node.arg is not None:
            found.operators.add(OperatorUse("", "=", free=_untyped(node.arg)))
        elif isinstance(node, ast.ColumnRef):
            # t.f and s.t.f may be f(t): attribute notation calls a one-argument function
            fields = node.fields or ()
            if len(fields) >= 2 and isinstance(fields[-1], ast.String):
                found.calls.add(Call("", str(fields[-1].sval), 1, free=False))
        elif isinstance(node, ast.A_Indirection):
            for part in node.indirection or ():
                if isinstance(part, ast.String):
                    found.calls.add(Call("", str(part.sval), 1, free=False))
        elif isinstance(node, ast.RangeTableSample):
            name = qualified(node.method)
            if name:
                found.calls.add(Call(*name, nargs=1, free=True))
    return found


def _sets_common_type(node: ast.Node) -> bool:
    if isinstance(node, ast.SelectStmt):
        return bool(node.larg) or len(node.valuesLists or ()) > 1
    if isinstance(node, ast.JoinExpr):
        return bool(node.usingClause) or bool(node.isNatural)
    return isinstance(node, ast.A_Expr) and node.kind == A_Expr_Kind.AEXPR_IN


def _call(node: ast.FuncCall, found: Names) -> None:
    name = qualified(node.funcname)
    if not name:
        return
    args = tuple(node.args or ())
    free = not args or any(_untyped(a) for a in args)
    found.calls.add(Call(*name, nargs=len(args), free=free))
    if len(args) == 1:
        # `mood(x)` is a cast to the type mood when no function of that name fits
        found.types.add(name)
        if not free:
            found.cast_targets.add(name)


def _operator(node: ast.A_Expr, found: Names) -> None:
    free = _all_untyped(node.lexpr, node.rexpr)
    if node.kind in _BETWEEN:
        found.operators.update(OperatorUse("", op, free=free) for op in _BETWEEN_OPERATORS)
        return
    name = qualified(node.name)
    if name:
        found.operators.add(OperatorUse(*name, free=free))

"""Per-table predicates of a statement, from PostgreSQL's own parser (pglast).

For each table a statement reads we collect what an index could serve: equality (``=``,
``IN``, ``IS NULL``), ranges (``<``, ``BETWEEN``, ``LIKE 'prefix%'``), join keys, ORDER BY and
GROUP BY keys, and the columns it needs at all (for covering indexes). A key is a column or an
expression over one table's columns, such as ``lower(email)``, ``date_trunc('day', at)`` or
``payload ->> 'k'``. Anything we do not understand is skipped, never guessed: a statement that
does not parse yields nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pglast import ast, parse_sql
from pglast.enums import A_Expr_Kind, BoolExprType, NullTestType, SortByDir
from pglast.stream import RawStream

from opscope.db.plans.explain import walk

#: operators a btree serves
_RANGE_OPS = frozenset({"<", ">", "<=", ">="})
#: functions whose result cannot index (aggregates are not expressions over one row)
_AGGREGATES = frozenset({"count", "sum", "avg", "min", "max", "array_agg", "string_agg"})

ColumnsOf = Callable[[str | None, str], frozenset[str] | None]


@dataclass(frozen=True, order=True)
class Key:
    """An indexable key: a plain column, or an expression over one table's columns."""

    #: the text that goes into CREATE INDEX: a column name or a parenthesizable expression
    expr: str
    #: the columns it reads, for HOT-update overlap and covering
    columns: tuple[str, ...]
    is_expression: bool = False


@dataclass
class TableUse:
    """What one statement does with one table."""

    schema: str | None
    table: str
    equality: list[Key] = field(default_factory=list)
    ranges: list[Key] = field(default_factory=list)
    #: LIKE with a constant prefix: a range that needs a pattern operator class
    like_prefix: list[Key] = field(default_factory=list)
    joins: list[Key] = field(default_factory=list)
    order_by: list[tuple[Key, bool]] = field(default_factory=list)
    group_by: list[Key] = field(default_factory=list)
    #: every column the statement reads from the table; None when it reads them all (*)
    referenced: set[str] | None = field(default_factory=set)
    #: columns an UPDATE sets (they decide whether updates stay HOT)
    updated: set[str] = field(default_factory=set)

    @property
    def name(self) -> tuple[str | None, str]:
        return (self.schema, self.table)

    def has_predicates(self) -> bool:
        return bool(self.equality or self.ranges or self.like_prefix or self.joins)


@dataclass
class _Rel:
    use: TableUse
    alias: str


@dataclass
class _Scope:
    rels: list[_Rel]
    parent: _Scope | None = None

    def resolve(self, fields: tuple[str, ...], columns_of: ColumnsOf | None) -> _Rel | None:
        scope: _Scope | None = self
        while scope is not None:
            found = scope._resolve_here(fields, columns_of)
            if found is not None:
                return found
            scope = scope.parent
        return None

    def _resolve_here(self, fields: tuple[str, ...], columns_of: ColumnsOf | None) -> _Rel | None:
        if len(fields) >= 2:
            qualifier = fields[-2]
            for rel in self.rels:
                if rel.alias == qualifier:
                    return rel
            return None
        if len(self.rels) == 1:
            rel = self.rels[0]
            known = columns_of(rel.use.schema, rel.use.table) if columns_of else None
            # a correlated subquery's column its one table lacks is the outer query's
            return rel if known is None or fields[0] in known else None
        if columns_of is not None:
            owners = [
                r for r in self.rels if fields[0] in (columns_of(r.use.schema, r.use.table) or ())
            ]
            if len(owners) == 1:
                return owners[0]
        return None


def _fields(ref: ast.ColumnRef) -> tuple[str, ...] | None:
    out: list[str] = []
    for f in ref.fields or ():
        if not isinstance(f, ast.String):
            return None  # A_Star: table.* or *
        out.append(str(f.sval))
    return tuple(out)


def _output_expression(node: Any, targets: Any) -> Any:
    """What ORDER BY 2 or ORDER BY an output alias sorts by: the select list's expression
    (PostgreSQL looks an ORDER BY name up among the output names first)."""
    items = [t for t in targets or () if isinstance(t, ast.ResTarget)]
    if isinstance(node, ast.A_Const) and isinstance(node.val, ast.Integer):
        n = int(node.val.ival or 0)
        return items[n - 1].val if 0 < n <= len(items) else node
    if isinstance(node, ast.ColumnRef):
        fields = _fields(node)
        if fields is not None and len(fields) == 1:
            named = [t for t in items if t.name == fields[0]]
            if len(named) == 1:
                return named[0].val
    return node


def _deparse_unqualified(node: ast.Node) -> str:
    """Expression text for CREATE INDEX: column references lose their table alias."""
    clone = copy.deepcopy(node)
    for ref in walk(clone):
        if isinstance(ref, ast.ColumnRef) and ref.fields:
            ref.fields = (ref.fields[-1],)
    return str(RawStream()(clone))


class _Extractor:
    def __init__(self, columns_of: ColumnsOf | None) -> None:
        self.columns_of = columns_of
        self.uses: list[TableUse] = []
        self.ctes: set[str] = set()

    # --- scopes -------------------------------------------------------------------------
    def statement(self, stmt: ast.Node) -> None:
        if isinstance(stmt, ast.SelectStmt):
            self.select(stmt, None)
        elif isinstance(stmt, ast.UpdateStmt | ast.DeleteStmt):
            self.modify(stmt)
        elif isinstance(stmt, ast.InsertStmt) and isinstance(stmt.selectStmt, ast.SelectStmt):
            self.select(stmt.selectStmt, None)

    def _with(self, with_clause: Any, parent: _Scope | None) -> None:
        if with_clause is None:
            return
        for cte in with_clause.ctes or ():
            if isinstance(cte, ast.CommonTableExpr):
                self.ctes.add(str(cte.ctename))
                if cte.ctequery is not None:
                    self.statement(cte.ctequery)

    def select(self, stmt: ast.SelectStmt, parent: _Scope | None) -> None:
        self._with(stmt.withClause, parent)
        if stmt.larg is not None or stmt.rarg is not None:  # UNION and friends
            for side in (stmt.larg, stmt.rarg):
                if side is not None:
                    self.select(side, parent)
            return
        scope = _Scope([], parent)
        quals: list[Any] = []
        for item in stmt.fromClause or ():
            self.from_item(item, scope, quals)
        if stmt.whereClause is not None:
            quals.append(stmt.whereClause)
        for qual in quals:
            self.predicate(qual, scope)
        # a subquery in the select list or HAVING runs once per row: its correlated key is
        # often the index a report query needs most
        for item in (*(stmt.targetList or ()), stmt.havingClause):
            if item is not None:
                self.sublinks(item, scope)
        for sort in stmt.sortClause or ():
            if isinstance(sort, ast.SortBy):
                key = self.key(_output_expression(sort.node, stmt.targetList), scope)
                if key is not None:
                    rel, k = key
                    rel.use.order_by.append((k, sort.sortby_dir == SortByDir.SORTBY_DESC))
        for item in stmt.groupClause or ():
            key = self.key(item, scope)
            if key is not None:
                key[0].use.group_by.append(key[1])
        self.references(stmt, scope)

    def modify(self, stmt: ast.UpdateStmt | ast.DeleteStmt) -> None:
        self._with(stmt.withClause, None)
        scope = _Scope([], None)
        use = self.table(stmt.relation, scope)
        quals: list[Any] = []
        extra = stmt.fromClause if isinstance(stmt, ast.UpdateStmt) else stmt.usingClause
        for item in extra or ():
            self.from_item(item, scope, quals)
        if stmt.whereClause is not None:
            quals.append(stmt.whereClause)
        for qual in quals:
            self.predicate(qual, scope)
        if isinstance(stmt, ast.UpdateStmt) and use is not None:
            for target in stmt.targetList or ():
                if isinstance(target, ast.ResTarget) and target.name:
                    use.updated.add(str(target.name))
        self.references(stmt, scope)

    def table(self, rv: Any, scope: _Scope) -> TableUse | None:
        if not isinstance(rv, ast.RangeVar) or not rv.relname:
            return None
        if rv.schemaname is None and rv.relname in self.ctes:
            return None
        use = TableUse(rv.schemaname, str(rv.relname))
        alias = rv.alias.aliasname if rv.alias is not None else rv.relname
        self.uses.append(use)
        scope.rels.append(_Rel(use, str(alias)))
        return use

    def from_item(self, item: Any, scope: _Scope, quals: list[Any]) -> None:
        if isinstance(item, ast.RangeVar):
            self.table(item, scope)
        elif isinstance(item, ast.JoinExpr):
            start = len(scope.rels)
            self.from_item(item.larg, scope, quals)
            middle = len(scope.rels)
            self.from_item(item.rarg, scope, quals)
            if item.quals is not None:
                quals.append(item.quals)
            self.using(item, scope.rels[start:middle], scope.rels[middle:])
        elif isinstance(item, ast.RangeSubselect) and isinstance(item.subquery, ast.SelectStmt):
            self.select(item.subquery, scope if item.lateral else None)

    def _owner(self, rels: list[_Rel], column: str) -> _Rel | None:
        """The one table of a join side that has `column`."""
        if len(rels) == 1:
            return rels[0]
        if self.columns_of is None:
            return None
        owners = [r for r in rels if column in (self.columns_of(r.use.schema, r.use.table) or ())]
        return owners[0] if len(owners) == 1 else None

    def _side_columns(self, rels: list[_Rel]) -> set[str] | None:
        out: set[str] = set()
        for r in rels:
            cols = self.columns_of(r.use.schema, r.use.table) if self.columns_of else None
            if cols is None:
                return None
            out |= cols
        return out

    def using(self, join: ast.JoinExpr, left: list[_Rel], right: list[_Rel]) -> None:
        """JOIN ... USING (c) and NATURAL JOIN: c is a join key on both sides."""
        names = [str(n.sval) for n in join.usingClause or () if isinstance(n, ast.String)]
        if join.isNatural:
            lcols, rcols = self._side_columns(left), self._side_columns(right)
            names = sorted(lcols & rcols) if lcols is not None and rcols is not None else []
        for name in names:
            lrel, rrel = self._owner(left, name), self._owner(right, name)
            if lrel is not None and rrel is not None:
                lrel.use.joins.append(Key(name, (name,)))
                rrel.use.joins.append(Key(name, (name,)))

    # --- keys and predicates ------------------------------------------------------------
    def key(self, node: Any, scope: _Scope) -> tuple[_Rel, Key] | None:
        """The table and key `node` indexes on, when it is a column or an expression over
        the columns of exactly one table with no parameters inside."""
        if isinstance(node, ast.ColumnRef):
            fields = _fields(node)
            if not fields:
                return None
            rel = scope.resolve(fields, self.columns_of)
            if rel is None:
                return None
            return rel, Key(fields[-1], (fields[-1],))
        if not isinstance(node, ast.FuncCall | ast.A_Expr | ast.TypeCast):
            return None
        if isinstance(node, ast.FuncCall):
            name = str(node.funcname[-1].sval).lower() if node.funcname else ""
            if name in _AGGREGATES or node.agg_star or node.over is not None:
                return None
        rels: list[_Rel] = []
        cols: list[str] = []
        for sub in walk(node):
            if isinstance(sub, ast.ParamRef | ast.SubLink):
                return None  # a parameter inside: the expression is not known
            if isinstance(sub, ast.ColumnRef):
                fields = _fields(sub)
                rel = scope.resolve(fields, self.columns_of) if fields else None
                if rel is None or not fields:
                    return None
                rels.append(rel)
                cols.append(fields[-1])
        if not rels or any(r is not rels[0] for r in rels):
            return None
        ordered = tuple(dict.fromkeys(sorted(cols)))
        return rels[0], Key(_deparse_unqualified(node), ordered, True)

    def is_value(self, node: Any, scope: _Scope) -> bool:
        """A side that is fixed while the table is scanned: constants, parameters, and
        expressions of them (now() - interval '1 day')."""
        for sub in walk(node):
            if isinstance(sub, ast.ColumnRef | ast.SubLink):
                return False
            if (
                isinstance(sub, ast.FuncCall)
                and sub.funcname
                and str(sub.funcname[-1].sval).lower() in _AGGREGATES
            ):
                return False
        return True

    def predicate(self, node: Any, scope: _Scope) -> None:
        if isinstance(node, ast.BoolExpr):
            # only AND narrows the rows an index must find; OR and NOT are left to bitmap
            # scans of the planner's choosing
            if node.boolop == BoolExprType.AND_EXPR:
                for arg in node.args or ():
                    self.predicate(arg, scope)
            else:
                self.sublinks(node, scope)
            return
        if isinstance(node, ast.NullTest):
            if node.nulltesttype == NullTestType.IS_NULL:
                found = self.key(node.arg, scope)
                if found is not None:
                    found[0].use.equality.append(found[1])
            return
        if isinstance(node, ast.SubLink):
            self.sublinks(node, scope)
            return
        if not isinstance(node, ast.A_Expr):
            return
        op = str(node.name[-1].sval) if node.name else ""
        kind = node.kind
        if kind == A_Expr_Kind.AEXPR_IN and op == "=":
            found = self.key(node.lexpr, scope)
            if found is not None:
                found[0].use.equality.append(found[1])
            return
        if kind == A_Expr_Kind.AEXPR_OP_ANY and op == "=":
            # col = ANY($1) or = ANY(ARRAY[...]): IN by another name
            found = self.key(node.lexpr, scope)
            if found is not None and self.is_value(node.rexpr, scope):
                found[0].use.equality.append(found[1])
            else:
                self.sublinks(node, scope)
            return
        if kind in (A_Expr_Kind.AEXPR_BETWEEN, A_Expr_Kind.AEXPR_BETWEEN_SYM):
            found = self.key(node.lexpr, scope)
            if found is not None:
                found[0].use.ranges.append(found[1])
            return
        if kind == A_Expr_Kind.AEXPR_LIKE and op == "~~":
            found = self.key(node.lexpr, scope)
            pattern = node.rexpr
            if (
                found is not None
                and isinstance(pattern, ast.A_Const)
                and isinstance(pattern.val, ast.String)
                and pattern.val.sval
                and str(pattern.val.sval)[0] not in "%_"
            ):
                found[0].use.like_prefix.append(found[1])
            return
        if kind != A_Expr_Kind.AEXPR_OP or (op != "=" and op not in _RANGE_OPS):
            self.sublinks(node, scope)
            return
        left = self.key(node.lexpr, scope)
        right = self.key(node.rexpr, scope)
        if left is not None and right is not None:
            if op == "=" and left[0] is not right[0]:
                left[0].use.joins.append(left[1])
                right[0].use.joins.append(right[1])
            return
        for found, other in ((left, node.rexpr), (right, node.lexpr)):
            if found is not None and self.is_value(other, scope):
                target = found[0].use.equality if op == "=" else found[0].use.ranges
                target.append(found[1])
                return
        self.sublinks(node, scope)

    def sublinks(self, node: Any, scope: _Scope) -> None:
        """Subqueries inside a condition are statements of their own, correlated to ours."""
        for sub in _sublinks(node):
            if isinstance(sub.subselect, ast.SelectStmt):
                self.select(sub.subselect, scope)
                if sub.testexpr is not None:
                    found = self.key(sub.testexpr, scope)
                    if found is not None:
                        found[0].use.joins.append(found[1])

    def references(self, stmt: ast.Node, scope: _Scope) -> None:
        for node in _own_nodes(stmt):
            if isinstance(node, ast.ColumnRef):
                fields = _fields(node)
                if fields is None:
                    # t.* or *: every column of the table (or of all tables) is needed
                    raw = node.fields or ()
                    qualifier = (
                        raw[0].sval if len(raw) > 1 and isinstance(raw[0], ast.String) else None
                    )
                    for rel in scope.rels:
                        if qualifier is None or rel.alias == qualifier:
                            rel.use.referenced = None
                    continue
                owner = scope.resolve(fields, self.columns_of)
                if owner is not None and owner.use.referenced is not None:
                    owner.use.referenced.add(fields[-1])


def _sublinks(node: Any) -> Iterator[ast.SubLink]:
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, ast.SubLink):
            yield cur
            continue
        if isinstance(cur, ast.Node):
            stack.extend(getattr(cur, name, None) for name in cur)
        elif isinstance(cur, tuple | list):
            stack.extend(cur)


def _own_nodes(stmt: ast.Node) -> Iterator[Any]:
    """Nodes of a statement outside its subqueries (which have scopes of their own)."""
    stack: list[Any] = [getattr(stmt, name, None) for name in stmt]
    while stack:
        cur = stack.pop()
        if isinstance(cur, ast.SelectStmt | ast.RangeSubselect | ast.SubLink | ast.WithClause):
            continue
        if isinstance(cur, ast.Node):
            yield cur
            stack.extend(getattr(cur, name, None) for name in cur)
        elif isinstance(cur, tuple | list):
            stack.extend(cur)


def extract(query: str, columns_of: ColumnsOf | None = None) -> list[TableUse]:
    """Per-table uses of every table `query` reads; [] when it does not parse.

    `columns_of(schema, table)` resolves unqualified columns in joins; without it, they are
    only resolved when one table is in scope."""
    try:
        stmts = parse_sql(query)
    except Exception:  # pglast's ParseError, and lexer errors on arbitrary text
        return []
    out = _Extractor(columns_of)
    try:
        for raw in stmts:
            if raw.stmt is not None:
                out.statement(raw.stmt)
    except RecursionError:
        return []
    return out.uses


@lru_cache(maxsize=4096)
def extract_cached(query: str) -> tuple[TableUse, ...]:
    return tuple(extract(query))

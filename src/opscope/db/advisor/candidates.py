"""Candidate indexes from the workload's predicates.

Per statement and table: each key alone; equality keys together (most selective first), then
one range key or the ORDER BY keys; LIKE-prefix keys with and without the pattern operator
class; and the same keys with INCLUDE columns when that lets the statement read only the
index. Candidates an existing index already provides are dropped before costing.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from pglast import ast, parse_sql
from psycopg import sql

from opscope.db.advisor.predicates import Key, TableUse
from opscope.db.catalog import Index
from opscope.db.naming import IndexNames, fit, name_stem, unique_name
from opscope.sqltext import qualified, quote_ident

PATTERN_OPS = "text_pattern_ops"


@dataclass(frozen=True)
class KeyPart:
    expr: str
    is_expression: bool = False
    opclass: str | None = None
    columns: tuple[str, ...] = ()

    def printed(self) -> str:
        text = f"({self.expr})" if self.is_expression else quote_ident(self.expr)
        return f"{text} {self.opclass}" if self.opclass else text

    def composed(self) -> sql.Composable:
        # expressions are pglast's own deparse of a parsed expression (checked to re-parse
        # as exactly one expression), and hypopg only accepts a CREATE INDEX statement
        base: sql.Composable = (
            sql.SQL("({})").format(sql.SQL(self.expr))
            if self.is_expression
            else sql.Identifier(self.expr)
        )
        if self.opclass:
            return sql.SQL("{} {}").format(base, sql.SQL(self.opclass))
        return base


@dataclass(frozen=True)
class Candidate:
    schema: str
    table: str
    keys: tuple[KeyPart, ...]
    include: tuple[str, ...] = ()
    #: the leaf partitions (schema, name) when the table is partitioned: the index is made
    #: on the parent ONLY, then on each partition CONCURRENTLY and attached
    partitions: tuple[tuple[str, str], ...] = ()

    @property
    def relation(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(k.expr for k in self.keys)

    @property
    def columns(self) -> frozenset[str]:
        """Every column the index stores: what an UPDATE must not touch to stay HOT."""
        cols = {c for k in self.keys for c in (k.columns or (k.expr,))}
        return frozenset(cols | set(self.include))

    def label(self) -> str:
        text = f"{self.relation} ({', '.join(k.printed() for k in self.keys)})"
        return text + (f" INCLUDE ({', '.join(self.include)})" if self.include else "")

    def name_stem(self) -> str:
        """Table, keys (with a non-default operator class), "incl" when it has INCLUDE
        columns: the name before "_idx"."""
        parts = [self.table]
        for k in self.keys:
            parts.append(k.expr)
            if k.opclass:
                parts.append(k.opclass)
        if self.include:
            parts.append("incl")
        return name_stem(parts)

    @property
    def definition(self) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        """What the index is, for naming: the same definition always gets the same name."""
        return (self.table, tuple(k.printed() for k in self.keys), self.include)

    def index_name(self, taken: Collection[str] = ()) -> str:
        """name_stem() + "_idx" in at most 63 bytes, never one of `taken` (the relation
        names of the schema): a number is added as PostgreSQL does."""
        return unique_name(self.name_stem(), taken)

    def fix_sql(self, name: str | None = None) -> str:
        keys = ", ".join(k.printed() for k in self.keys)
        include = f" INCLUDE ({', '.join(quote_ident(c) for c in self.include)})"
        tail = f" ({keys}){include if self.include else ''};"
        name = name or self.index_name()
        if not self.partitions:
            return (
                f"CREATE INDEX CONCURRENTLY {quote_ident(name)} ON "
                f"{qualified(self.schema, self.table)}{tail}"
            )
        # CONCURRENTLY is refused on a partitioned table, and a plain CREATE INDEX there
        # blocks writes to every partition for the whole build
        lines = [
            f"CREATE INDEX {quote_ident(name)} ON ONLY {qualified(self.schema, self.table)}{tail}"
        ]
        for schema, leaf in self.partitions:
            part = fit(name_stem([leaf, *(k.expr for k in self.keys)]), "_idx")
            lines.append(
                f"CREATE INDEX CONCURRENTLY {quote_ident(part)} ON {qualified(schema, leaf)}{tail}"
            )
            lines.append(
                f"ALTER INDEX {qualified(self.schema, name)} ATTACH PARTITION "
                f"{qualified(schema, part)};"
            )
        return "\n".join(lines)

    def ddl(self, *, concurrently: bool = False, name: str | None = None) -> sql.Composed:
        """The CREATE INDEX statement, composed with psycopg.sql."""
        head = sql.SQL("CREATE INDEX CONCURRENTLY " if concurrently else "CREATE INDEX ")
        named = sql.SQL("{} ").format(sql.Identifier(name)) if name else sql.SQL("")
        stmt = (
            head
            + named
            + sql.SQL("ON {}.{} ({})").format(
                sql.Identifier(self.schema),
                sql.Identifier(self.table),
                sql.SQL(", ").join(k.composed() for k in self.keys),
            )
        )
        if self.include:
            stmt += sql.SQL(" INCLUDE ({})").format(
                sql.SQL(", ").join(sql.Identifier(c) for c in self.include)
            )
        return stmt


def unique_names(candidates: Sequence[Candidate], taken: Collection[tuple[str, str]]) -> list[str]:
    """A name for each candidate, none of them in `taken` ((schema, relation name)) nor equal
    to another candidate's; equal candidates get the same name."""
    names = IndexNames(taken)
    return [names.name(c.schema, c.name_stem(), c.definition) for c in candidates]


def safe_expression(expr: str) -> bool:
    """The expression parses back as exactly one expression and nothing else."""
    try:
        stmts = parse_sql(f"SELECT ({expr})")
    except Exception:  # pglast's ParseError and lexer errors
        return False
    if len(stmts) != 1 or not isinstance(stmts[0].stmt, ast.SelectStmt):
        return False
    select = stmts[0].stmt
    return (
        len(select.targetList or ()) == 1
        and select.fromClause is None
        and select.whereClause is None
        and not select.withClause
    )


def _part(key: Key, opclass: str | None = None) -> KeyPart:
    return KeyPart(key.expr, key.is_expression, opclass, key.columns)


def _dedupe(keys: Iterable[Key]) -> list[Key]:
    return list(dict.fromkeys(keys))


def candidates_for_use(
    use: TableUse,
    schema: str,
    *,
    selectivity: Mapping[str, float],
    all_columns: Sequence[str],
    max_include: int,
) -> list[Candidate]:
    """`selectivity` maps a column to the share of rows one value matches (smaller first)."""

    def rank(k: Key) -> float:
        return selectivity.get(k.expr, 0.5) if not k.is_expression else 0.01

    eq = sorted(_dedupe(use.equality + use.joins), key=rank)
    ranges = _dedupe(use.ranges)
    likes = _dedupe(use.like_prefix)
    order = [k for k, _ in use.order_by]
    descending = [d for _, d in use.order_by]
    out: list[Candidate] = []

    def add(keys: Sequence[KeyPart]) -> None:
        names = [k.expr for k in keys]
        if keys and len(set(names)) == len(names):
            out.append(Candidate(schema, use.table, tuple(keys)))

    for k in eq + ranges:
        add([_part(k)])
    for k in likes:
        add([_part(k)])
        add([_part(k, PATTERN_OPS)])
    eq_parts = [_part(k) for k in eq]
    if len(eq_parts) > 1:
        add(eq_parts)
    for r in ranges:
        add([*eq_parts, _part(r)])
    for r in likes:
        add([*eq_parts, _part(r, PATTERN_OPS)])
    # ORDER BY after the equality keys lets the index return rows already sorted (one
    # direction only: a btree scans forwards or backwards, not mixed)
    if order and len(set(descending)) == 1 and not any(k in eq for k in order):
        add([*eq_parts, *(_part(k) for k in order)])
    # GROUP BY alone is a full-table aggregate: an index would only be a narrower copy of
    # the table to read in full, paid for on every write
    # covering variants: the statement's other columns in INCLUDE, for index-only scans
    # SELECT * needs every column: an index holding all of them is a second copy of the table
    needed = set(use.referenced or ())
    covering: list[Candidate] = []
    for c in out if use.referenced is not None else []:
        if any(k.is_expression for k in c.keys):
            continue
        rest = sorted(needed - set(c.key_names))
        if rest and len(rest) <= max_include and set(rest) <= set(all_columns):
            covering.append(Candidate(schema, use.table, c.keys, tuple(rest)))
    return [
        c for c in out + covering if all(safe_expression(k.expr) for k in c.keys if k.is_expression)
    ]


_BARE = re.compile(r"[a-z_][a-z0-9_$]*")
_QUOTED = re.compile(r'"((?:[^"]|"")+)"')


def index_column(idx: Index, position: int) -> str | None:
    """The column an index stores at `position`, as its raw name; None for an expression.

    pg_get_indexdef prints a column as PostgreSQL quotes it ("UserId"); a table locked while
    the catalog was read gives plain names. Compared on raw names, "UserId" is UserId."""
    if position >= len(idx.column_defs):
        return None
    if position < len(idx.attnums) and idx.attnums[position] == 0:
        return None
    text = idx.column_defs[position]
    if not idx.details_known or _BARE.fullmatch(text):
        return text
    quoted = _QUOTED.fullmatch(text)
    return quoted.group(1).replace('""', '"') if quoted else None


def _key_columns(idx: Index) -> tuple[str | None, ...]:
    return tuple(index_column(idx, i) for i in range(idx.key_count))


def _all_columns(idx: Index) -> set[str]:
    return {c for i in range(len(idx.column_defs)) if (c := index_column(idx, i)) is not None}


def already_indexed(candidate: Candidate, indexes: Sequence[Index]) -> bool:
    """An existing valid btree starts with the same plain-column keys and stores the
    INCLUDE columns: the candidate would add nothing."""
    if any(k.is_expression or k.opclass for k in candidate.keys):
        return False
    n = len(candidate.keys)
    for idx in indexes:
        if idx.method != "btree" or not idx.is_valid or idx.predicate is not None:
            continue
        if _key_columns(idx)[:n] != candidate.key_names:
            continue
        if set(candidate.include) <= _all_columns(idx):
            return True
    return False


def reordering_of(candidate: Candidate, indexes: Sequence[Index]) -> Index | None:
    """An existing btree with the same key columns in another order (the composite that
    was built with its columns the wrong way round for this workload). It may be protected
    (unique, a constraint's, the replica identity): the caller must not drop it then."""
    if len(candidate.keys) < 2 or any(k.is_expression for k in candidate.keys):
        return None
    want = set(candidate.key_names)
    for idx in indexes:
        if idx.method != "btree" or not idx.is_valid or idx.predicate is not None:
            continue
        keys = _key_columns(idx)
        if set(keys) == want and len(keys) == len(want) and keys != candidate.key_names:
            return idx
    return None

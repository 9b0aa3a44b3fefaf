"""Which columns the workload filters each table on, from pg_stat_statements (through the
index advisor's parser) and from pg_qualstats' own record of the comparisons it saw."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from statistics import median
from typing import Any

from pglast import ast, parse_sql

from opscope.db.advisor.advise import resolve
from opscope.db.advisor.predicates import ColumnsOf, TableUse, extract
from opscope.db.catalog import Table
from opscope.db.partitions.model import parse_moment
from opscope.db.partitions.proposal import KeyUse
from opscope.db.statements import Statement, is_maintenance


@dataclass
class _Tally:
    calls: int = 0
    equality: dict[str, int] = field(default_factory=dict)
    ranges: dict[str, int] = field(default_factory=dict)
    retention: set[str] = field(default_factory=set)
    qualstats: dict[str, int] = field(default_factory=dict)
    lower_bounds: dict[str, list[float]] = field(default_factory=dict)


def is_delete(query: str) -> bool:
    try:
        stmts = parse_sql(query)
    except Exception:  # pglast's ParseError and lexer errors
        return False
    return any(isinstance(raw.stmt, ast.DeleteStmt) for raw in stmts)


def _plain(keys: Iterable[Any]) -> set[str]:
    # a filter on an expression of the column (date_trunc('day', at) = $1) cannot prune
    return {k.expr for k in keys if not k.is_expression and len(k.columns) == 1}


def table_filters(
    statements: Iterable[Statement],
    tables: Mapping[str, Table],
    columns: Mapping[str, tuple[str, ...]],
    extract_uses: Callable[[str, ColumnsOf], list[TableUse]] = extract,
) -> dict[str, _Tally]:
    """Per table (schema.name): its statements' calls, and the calls filtering on each
    column by equality and by range."""

    def columns_of(schema: str | None, table: str) -> frozenset[str] | None:
        rel = resolve(TableUse(schema, table), tables)
        return frozenset(columns.get(rel, ())) if rel else None

    out: dict[str, _Tally] = {}
    for s in statements:
        if not s.toplevel or s.calls <= 0 or is_maintenance(s.query):
            continue
        deleting: bool | None = None
        for use in extract_uses(s.query, columns_of):
            rel = resolve(use, tables)
            if rel is None:
                continue
            tally = out.setdefault(rel, _Tally())
            tally.calls += s.calls
            for col in _plain(use.equality):
                tally.equality[col] = tally.equality.get(col, 0) + s.calls
            for col in _plain(use.ranges):
                tally.ranges[col] = tally.ranges.get(col, 0) + s.calls
                if deleting is None:
                    deleting = is_delete(s.query)
                if deleting:
                    tally.retention.add(col)
    return out


def add_qualstats(
    tallies: dict[str, _Tally],
    rows: Iterable[Mapping[str, Any]],
    names: Mapping[int, str],
    now: datetime,
) -> None:
    """pg_qualstats' comparisons: the columns filtered (even by statements pg_stat_statements
    evicted), and for time columns how far back the lower bounds reach."""
    for row in rows:
        rel = names.get(int(row["table_oid"]))
        if rel is None:
            continue
        tally = tallies.setdefault(rel, _Tally())
        col = str(row["column_name"])
        runs = int(row["executions"] or 0)
        tally.qualstats[col] = tally.qualstats.get(col, 0) + runs
        if row["operator"] in (">", ">="):
            moment = parse_moment(row["constvalue"])
            if moment is not None and moment <= now:
                days = (now - moment).total_seconds() / 86400
                tally.lower_bounds.setdefault(col, []).extend([days] * max(min(runs, 100), 1))


def key_uses(tally: _Tally) -> dict[str, KeyUse]:
    out: dict[str, KeyUse] = {}
    total = max(tally.calls, 1)
    for col in set(tally.equality) | set(tally.ranges) | set(tally.qualstats):
        ranged = tally.ranges.get(col, 0)
        calls = max(ranged, tally.equality.get(col, 0))
        sources = tuple(
            name
            for name, seen in (
                ("pg_stat_statements", calls > 0),
                ("pg_qualstats", col in tally.qualstats),
            )
            if seen
        )
        bounds = tally.lower_bounds.get(col)
        out[col] = KeyUse(
            column=col,
            calls=calls,
            share=calls / total if tally.calls else 0.0,
            ranges=ranged > 0 or bool(bounds),
            retention=col in tally.retention,
            query_days=median(bounds) if bounds else None,
            sources=sources,
        )
    return out

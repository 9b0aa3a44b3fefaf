"""Predicates as the planner sees them: the filters and sort keys of EXPLAIN VERBOSE.

By the time PostgreSQL plans a statement it has expanded its views (recursively), inlined
its CTEs (plain or NOT MATERIALIZED ones used once; never a MATERIALIZED one, whose filter
stays on the CTE scan), resolved ORDER BY 1 and output aliases, and scans the partitions of
a partitioned table. Each scan node of the plan names the real relation, and VERBOSE prints
its filter and the sort keys above it with the scan's alias: rebuilt as
``SELECT * FROM relation AS alias WHERE filter ORDER BY keys`` and read by the same parser as
the statement's text (predicates.py), they give the table uses the text alone hides. A
partition's use is its partitioned table's: the index is recommended there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from opscope.db.advisor.predicates import Key, TableUse, extract
from opscope.db.plans.model import Plan, PlanNode
from opscope.sqltext import quote_ident

#: scan nodes whose relation is a table or materialized view (not a CTE, function, values)
_SCANS = frozenset(
    {
        "Seq Scan",
        "Index Scan",
        "Index Only Scan",
        "Bitmap Heap Scan",
        "Tid Scan",
        "Tid Range Scan",
        "Sample Scan",
    }
)


@dataclass
class _Scan:
    relation: str
    alias: str
    conditions: list[str]
    output: tuple[str, ...]
    sort: list[str]


def _scans(node: PlanNode, sorts: tuple[str, ...], out: list[_Scan]) -> None:
    keys = node.sort_key if node.node_type in ("Sort", "Incremental Sort") else sorts
    if node.node_type in _SCANS and node.relation_name and node.schema:
        conditions = [c for c in (node.filter, node.index_cond, node.recheck_cond) if c]
        out.append(
            _Scan(
                f"{node.schema}.{node.relation_name}",
                node.alias or node.relation_name,
                conditions,
                node.output,
                list(keys),
            )
        )
    for child in node.children:
        # a sort's keys belong to what it sorts; a join below it passes them to both sides
        _scans(child, keys if node.node_type not in ("Aggregate", "Group") else (), out)


def _mine(alias: str, key: str) -> bool:
    return key.startswith(f"{alias}.") or key.startswith(f'"{alias}".')


def plan_uses(plan: Plan, top_of: Callable[[str], str | None]) -> list[TableUse]:
    """The table uses the plan shows, each on its top partitioned table when it scans a
    partition (`top_of(schema.name)`: that table's schema.name, or None to leave it out)."""
    scans: list[_Scan] = []
    _scans(plan.root, (), scans)
    out: dict[str, TableUse] = {}
    for scan in scans:
        rel = top_of(scan.relation)
        if rel is None:
            continue
        schema, _, name = scan.relation.partition(".")
        sort = [k for k in scan.sort if _mine(scan.alias, k)]
        if not scan.conditions and not sort:
            continue
        # read by pglast only, never sent to a server
        text = f"SELECT * FROM {quote_ident(schema)}.{quote_ident(name)} AS "  # noqa: S608
        text += quote_ident(scan.alias)
        if scan.conditions:
            text += " WHERE " + " AND ".join(f"({c})" for c in scan.conditions)
        if sort:
            text += " ORDER BY " + ", ".join(sort)
        found = [u for u in extract(text) if u.table == name]
        if not found:
            continue
        use = found[0]
        top_schema, _, top_name = rel.partition(".")
        merged = out.setdefault(rel, TableUse(top_schema, top_name))
        merge(merged, use)
        columns = {c.split(".", 1)[1].strip('"') for c in scan.output if _mine(scan.alias, c)}
        if merged.referenced is not None:
            merged.referenced |= columns
    return list(out.values())


def _add(into: list[Key], keys: Iterable[Key]) -> None:
    for k in keys:
        if k not in into:
            into.append(k)


def merge(into: TableUse, use: TableUse) -> None:
    """Add `use`'s predicates to `into` (same table), each once."""
    _add(into.equality, use.equality)
    _add(into.ranges, use.ranges)
    _add(into.like_prefix, use.like_prefix)
    _add(into.joins, use.joins)
    _add(into.group_by, use.group_by)
    for item in use.order_by:
        if item not in into.order_by:
            into.order_by.append(item)
    if into.referenced is not None and use.referenced is not None:
        into.referenced |= use.referenced
    into.updated |= use.updated

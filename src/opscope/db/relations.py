"""Which tables a statement reads, from PostgreSQL's own parser (pglast).

Matching names with a regular expression would find `orders` inside `orders_archive` or in
a string literal; the parse tree names exactly the relations the statement ranges over.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from pglast import parser


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            rv = cur.get("RangeVar")
            if isinstance(rv, dict):
                yield rv
            stack.extend(cur.values())
        elif isinstance(cur, list):
            stack.extend(cur)


@lru_cache(maxsize=4096)
def referenced_tables(query: str) -> frozenset[tuple[str | None, str]]:
    """(schema or None, name) of every relation named in `query`; empty if it does not parse
    (pg_stat_statements truncates long texts, and utility statements vary)."""
    try:
        tree = json.loads(parser.parse_sql_json(query))
    except Exception:  # pglast raises its own ParseError and others for odd input
        return frozenset()
    found: set[tuple[str | None, str]] = set()
    # CTE names look like relations in the tree; they are not tables
    ctes = {
        cte["CommonTableExpr"]["ctename"] for cte in _find_key(tree, "CommonTableExpr", wrap=True)
    }
    for rv in _walk(tree):
        name = rv.get("relname")
        if not name:
            continue
        schema = rv.get("schemaname")
        if schema is None and name in ctes:
            continue
        found.add((schema, name))
    return frozenset(found)


def _find_key(node: Any, key: str, wrap: bool = False) -> Iterator[dict[str, Any]]:
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            if key in cur and isinstance(cur[key], dict):
                yield cur if wrap else cur[key]
            stack.extend(cur.values())
        elif isinstance(cur, list):
            stack.extend(cur)


def mentions(
    query: str, schema: str, table: str, search_path: tuple[str, ...] = ("public",)
) -> bool:
    for ref_schema, name in referenced_tables(query):
        if name == table and (
            ref_schema == schema or (ref_schema is None and schema in search_path)
        ):
            return True
    return False

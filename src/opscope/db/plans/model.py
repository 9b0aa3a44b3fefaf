"""A typed plan tree parsed from ``EXPLAIN (FORMAT JSON)`` output.

The JSON carries dozens of keys that vary by node type and server version; the ones the
diagnosis reads are typed fields, everything else stays available in ``extra`` so the
renderer can show it without this module knowing every key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: keys lifted into typed fields; the rest of a node's keys land in `extra`
_TYPED = frozenset(
    {
        "Node Type",
        "Relation Name",
        "Schema",
        "Alias",
        "Index Name",
        "Startup Cost",
        "Total Cost",
        "Plan Rows",
        "Plan Width",
        "Actual Startup Time",
        "Actual Total Time",
        "Actual Rows",
        "Actual Loops",
        "Filter",
        "Rows Removed by Filter",
        "Index Cond",
        "Recheck Cond",
        "Join Type",
        "Hash Cond",
        "Merge Cond",
        "Join Filter",
        "Sort Key",
        "Sort Method",
        "Sort Space Used",
        "Sort Space Type",
        "Hash Batches",
        "Original Hash Batches",
        "Peak Memory Usage",
        "HashAgg Batches",
        "Disk Usage",
        "Temp Read Blocks",
        "Temp Written Blocks",
        "Parent Relationship",
        "Strategy",
        "Plans",
        "Output",
        "Workers",
    }
)


class PlanFormatError(ValueError):
    """The text is not EXPLAIN (FORMAT JSON) output."""


@dataclass(frozen=True)
class PlanNode:
    node_type: str
    startup_cost: float
    total_cost: float
    plan_rows: float
    plan_width: int
    schema: str | None = None
    relation_name: str | None = None
    alias: str | None = None
    index_name: str | None = None
    #: per loop, as EXPLAIN reports them; None when the plan was not run (no ANALYZE)
    actual_rows: float | None = None
    actual_loops: float | None = None
    actual_total_ms: float | None = None
    filter: str | None = None
    rows_removed_by_filter: float | None = None
    index_cond: str | None = None
    recheck_cond: str | None = None
    join_type: str | None = None
    join_cond: str | None = None
    join_filter: str | None = None
    sort_key: tuple[str, ...] = ()
    sort_method: str | None = None
    sort_space_kb: int | None = None
    sort_space_type: str | None = None
    hash_batches: int | None = None
    original_hash_batches: int | None = None
    peak_memory_kb: int | None = None
    hashagg_batches: int | None = None
    disk_usage_kb: int | None = None
    temp_read_blocks: int = 0
    temp_written_blocks: int = 0
    parent_relationship: str | None = None
    strategy: str | None = None
    output: tuple[str, ...] = ()
    children: tuple[PlanNode, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def relation(self) -> str | None:
        """schema.name of the scanned relation, when the node scans one."""
        if self.relation_name is None:
            return None
        return f"{self.schema}.{self.relation_name}" if self.schema else self.relation_name

    @property
    def analyzed(self) -> bool:
        return self.actual_loops is not None

    @property
    def executed(self) -> bool:
        return bool(self.actual_loops)

    @property
    def total_actual_rows(self) -> float | None:
        """Rows over all loops (EXPLAIN reports the per-loop average)."""
        if self.actual_rows is None or self.actual_loops is None:
            return None
        return self.actual_rows * self.actual_loops

    @property
    def own_temp_written_blocks(self) -> int:
        """Temp blocks this node wrote itself; EXPLAIN's counters include the children's."""
        below = sum(c.temp_written_blocks for c in self.children)
        return max(self.temp_written_blocks - below, 0)

    @property
    def inner(self) -> PlanNode | None:
        for child in self.children:
            if child.parent_relationship == "Inner":
                return child
        return self.children[1] if len(self.children) > 1 else None

    @property
    def outer(self) -> PlanNode | None:
        for child in self.children:
            if child.parent_relationship == "Outer":
                return child
        return self.children[0] if self.children else None

    def walk(self) -> Iterator[PlanNode]:
        """This node and every node below it, depth first in plan order."""
        yield self
        for child in self.children:
            yield from child.walk()

    def relations(self) -> set[str]:
        return {n.relation for n in self.walk() if n.relation is not None}


@dataclass(frozen=True)
class Plan:
    root: PlanNode
    planning_ms: float | None = None
    execution_ms: float | None = None
    #: True when the statement ran (EXPLAIN ANALYZE)
    analyzed: bool = False
    #: generic plan of a parameterized statement: no parameter values were known
    generic: bool = False

    @property
    def total_cost(self) -> float:
        return self.root.total_cost

    def walk(self) -> Iterator[PlanNode]:
        return self.root.walk()

    def uses_index(self, name: str) -> bool:
        return any(n.index_name == name for n in self.walk())


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _texts(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def parse_node(data: Mapping[str, Any]) -> PlanNode:
    if not isinstance(data, Mapping) or not isinstance(data.get("Node Type"), str):
        raise PlanFormatError("a plan node without a Node Type")
    children = data.get("Plans") or []
    if not isinstance(children, list):
        raise PlanFormatError("Plans is not a list")
    join_cond = _text(data.get("Hash Cond")) or _text(data.get("Merge Cond"))
    return PlanNode(
        node_type=data["Node Type"],
        startup_cost=_num(data.get("Startup Cost")) or 0.0,
        total_cost=_num(data.get("Total Cost")) or 0.0,
        plan_rows=_num(data.get("Plan Rows")) or 0.0,
        plan_width=_int(data.get("Plan Width")) or 0,
        schema=_text(data.get("Schema")),
        relation_name=_text(data.get("Relation Name")),
        alias=_text(data.get("Alias")),
        index_name=_text(data.get("Index Name")),
        actual_rows=_num(data.get("Actual Rows")),
        actual_loops=_num(data.get("Actual Loops")),
        actual_total_ms=_num(data.get("Actual Total Time")),
        filter=_text(data.get("Filter")),
        rows_removed_by_filter=_num(data.get("Rows Removed by Filter")),
        index_cond=_text(data.get("Index Cond")),
        recheck_cond=_text(data.get("Recheck Cond")),
        join_type=_text(data.get("Join Type")),
        join_cond=join_cond,
        join_filter=_text(data.get("Join Filter")),
        sort_key=_texts(data.get("Sort Key")),
        sort_method=_text(data.get("Sort Method")),
        sort_space_kb=_int(data.get("Sort Space Used")),
        sort_space_type=_text(data.get("Sort Space Type")),
        hash_batches=_int(data.get("Hash Batches")),
        original_hash_batches=_int(data.get("Original Hash Batches")),
        peak_memory_kb=_int(data.get("Peak Memory Usage")),
        hashagg_batches=_int(data.get("HashAgg Batches")),
        disk_usage_kb=_int(data.get("Disk Usage")),
        temp_read_blocks=_int(data.get("Temp Read Blocks")) or 0,
        temp_written_blocks=_int(data.get("Temp Written Blocks")) or 0,
        parent_relationship=_text(data.get("Parent Relationship")),
        strategy=_text(data.get("Strategy")),
        output=_texts(data.get("Output")),
        children=tuple(parse_node(c) for c in children),
        extra={k: v for k, v in data.items() if k not in _TYPED},
    )


def parse_plan(document: str | Sequence[Any] | Mapping[str, Any], *, generic: bool = False) -> Plan:
    """Parse what EXPLAIN (FORMAT JSON) returns: a JSON text, or psycopg's decoded list."""
    data: Any = document
    if isinstance(document, str):
        try:
            data = json.loads(document)
        except json.JSONDecodeError as exc:
            raise PlanFormatError(f"not JSON: {exc.msg}") from None
    if isinstance(data, list):
        if not data:
            raise PlanFormatError("an empty plan list")
        data = data[0]
    if not isinstance(data, Mapping) or "Plan" not in data:
        raise PlanFormatError("no Plan key: expected EXPLAIN (FORMAT JSON) output")
    root = parse_node(data["Plan"])
    execution = _num(data.get("Execution Time"))
    return Plan(
        root=root,
        planning_ms=_num(data.get("Planning Time")),
        execution_ms=execution,
        analyzed=root.analyzed,
        generic=generic,
    )

"""A plan as a readable tree, with the diagnosis marked on the nodes it concerns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opscope.db.plans.model import Plan, PlanNode


def _headline(node: PlanNode) -> str:
    name = node.node_type
    if node.strategy and node.node_type == "Aggregate":
        name = f"{node.strategy} {name}"
    if (node.join_type and "Join" in node.node_type) or node.node_type == "Nested Loop":
        name = f"{name} ({node.join_type})" if node.join_type else name
    if node.index_name:
        name += f" using {node.index_name}"
    if node.relation:
        name += f" on {node.relation}"
        if node.alias and node.alias != node.relation_name:
            name += f" {node.alias}"
    text = (
        f"{name}  cost={node.startup_cost:.2f}..{node.total_cost:.2f} "
        f"rows={node.plan_rows:,.0f} width={node.plan_width}"
    )
    if node.analyzed:
        if node.executed and node.actual_rows is not None:
            text += (
                f"  actual {node.actual_total_ms or 0:.3f} ms rows={node.actual_rows:,.0f} "
                f"loops={node.actual_loops or 0:,.0f}"
            )
        else:
            text += "  (never executed)"
    return text


def _details(node: PlanNode) -> list[str]:
    out: list[str] = []
    for label, value in (
        ("Index Cond", node.index_cond),
        ("Recheck Cond", node.recheck_cond),
        ("Join Cond", node.join_cond),
        ("Join Filter", node.join_filter),
        ("Filter", node.filter),
    ):
        if value:
            out.append(f"{label}: {value}")
    if node.rows_removed_by_filter:
        out.append(f"Rows Removed by Filter: {node.rows_removed_by_filter:,.0f}")
    if node.sort_key:
        out.append(f"Sort Key: {', '.join(node.sort_key)}")
    if node.sort_method:
        space = f"  {node.sort_space_type}: {node.sort_space_kb}kB" if node.sort_space_type else ""
        out.append(f"Sort Method: {node.sort_method}{space}")
    if node.hash_batches is not None:
        out.append(
            f"Batches: {node.hash_batches} (planned {node.original_hash_batches})  "
            f"Memory: {node.peak_memory_kb}kB"
        )
    if node.hashagg_batches is not None:
        out.append(f"Batches: {node.hashagg_batches}  Disk: {node.disk_usage_kb or 0}kB")
    if node.own_temp_written_blocks:
        out.append(f"Temp Written Blocks: {node.own_temp_written_blocks:,}")
    return out


def render_plan(plan: Plan, marks: Mapping[int, Sequence[str]] | None = None) -> str:
    """The plan as a tree; `marks` are lines shown under the node at that position (depth
    first from 0), such as `plan_seq_scan: ...`."""
    marks = marks or {}
    position = {id(node): i for i, node in enumerate(plan.walk())}
    lines: list[str] = []

    def visit(node: PlanNode, prefix: str, connector: str, last: bool) -> None:
        lines.append(f"{prefix}{connector}{_headline(node)}")
        child_prefix = prefix + ("" if not connector else ("   " if last else "│  "))
        bar = "│  " if node.children else "   "
        for detail in _details(node):
            lines.append(f"{child_prefix}{bar}{detail}")
        for mark in marks.get(position[id(node)], ()):
            lines.append(f"{child_prefix}{bar}!! {mark}")
        for i, child in enumerate(node.children):
            is_last = i == len(node.children) - 1
            visit(child, child_prefix, "└─ " if is_last else "├─ ", is_last)

    visit(plan.root, "", "", True)
    tail: list[str] = []
    if plan.generic:
        tail.append("Generic plan: parameter values unknown, no ANALYZE")
    if plan.planning_ms is not None:
        tail.append(f"Planning: {plan.planning_ms:.3f} ms")
    if plan.execution_ms is not None:
        tail.append(f"Execution: {plan.execution_ms:.3f} ms")
    return "\n".join(lines + tail) + "\n"

"""What a plan says is wrong, node by node, with the fix each problem calls for.

Four problems are recognised: a large table read in full to keep a few rows
(``plan_seq_scan``), a sort or hash that spilled to disk (``plan_disk_sort``), a node whose
row estimate is off by 10x or more (``plan_row_misestimate``, needs ANALYZE) and a nested
loop whose inner side runs many times (``plan_nested_loop``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pglast import ast, parse_sql

from opscope.db.catalog import Table
from opscope.db.naming import IndexNames, fit, name_stem, unique_name
from opscope.db.plans.explain import walk
from opscope.db.plans.model import Plan, PlanNode
from opscope.db.settings import PlanSettings
from opscope.findings import Severity
from opscope.sqltext import qualified, quote_ident
from opscope.units import human_bytes


@dataclass(frozen=True)
class PlanSetting:
    work_mem_kb: int = 4096
    hash_mem_multiplier: float = 2.0
    default_statistics_target: int = 100


DEFAULT_SETTING = PlanSetting()


@dataclass(frozen=True)
class PlanIssue:
    check: str
    severity: Severity
    node: PlanNode
    title: str
    detail: str
    recommendation: str
    #: schema.table the problem sits on; None when it belongs to the statement as a whole
    relation: str | None = None
    columns: tuple[str, ...] = ()
    fix_sql: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


@lru_cache(maxsize=2048)
def expression_columns(expression: str, alias: str | None = None) -> tuple[str, ...]:
    """Column names an EXPLAIN condition such as ``((o.customer_id = 42) AND ...)`` refers to,
    in order of appearance; empty when the text is not a plain expression (SubPlans). With
    `alias`, only columns qualified by it (or not qualified at all)."""
    try:
        stmts = parse_sql(f"SELECT 1 WHERE {expression}")
    except Exception:  # pglast's ParseError and lexer errors
        return ()
    if len(stmts) != 1 or not isinstance(stmts[0].stmt, ast.SelectStmt):
        return ()
    seen: dict[str, None] = {}
    refs = [n for n in walk(stmts[0].stmt.whereClause) if isinstance(n, ast.ColumnRef)]
    # walk() is depth-first from the end; sort back into text order
    refs.sort(key=lambda n: n.location or 0)
    for ref in refs:
        last = ref.fields[-1] if ref.fields else None
        qualifier = ref.fields[-2] if ref.fields and len(ref.fields) > 1 else None
        if alias and isinstance(qualifier, ast.String) and qualifier.sval != alias:
            continue
        if isinstance(last, ast.String) and last.sval:
            seen.setdefault(str(last.sval), None)
    return tuple(seen)


def _split(relation: str) -> tuple[str, str]:
    schema, _, name = relation.rpartition(".")
    return schema or "public", name


def _suggest_mem_kb(needed_kb: float) -> int:
    """A work_mem that fits what spilled: in-memory sorts need more than their on-disk size
    (tuple headers, pointers), so double it and round up to a power-of-two megabyte count."""
    mb = 1
    while mb * 1024 < needed_kb * 2:
        mb *= 2
    return mb * 1024


def _mem(kb: int) -> str:
    return f"{kb // 1024}MB" if kb % 1024 == 0 else f"{kb}kB"


@dataclass(frozen=True)
class PlanInputs:
    """What the rules read besides the plan: catalog records by schema.name (sizes,
    statistics age), the server's memory settings, the thresholds, and the temp blocks
    pg_stat_statements saw the statement write (which stand in for ANALYZE's sort methods
    when the plan was not run)."""

    tables: Mapping[str, Table]
    setting: PlanSetting = DEFAULT_SETTING
    settings: PlanSettings = field(default_factory=PlanSettings)
    temp_blocks_written: int = 0
    #: the run's index names, so a proposed index is named like the other checks name it
    names: IndexNames | None = None


def seq_scan_issues(plan: Plan, inputs: PlanInputs) -> list[PlanIssue]:
    return [
        i
        for node in plan.walk()
        for i in _seq_scan(node, inputs.tables, inputs.settings, inputs.names)
    ]


def disk_sort_issues(plan: Plan, inputs: PlanInputs) -> list[PlanIssue]:
    return [
        i
        for node in plan.walk()
        for i in _disk_sort(node, plan, inputs.setting, inputs.temp_blocks_written)
    ]


def misestimate_issues(plan: Plan, inputs: PlanInputs) -> list[PlanIssue]:
    stopped_early = stopped_early_nodes(plan)
    out: list[PlanIssue] = []
    for node in plan.walk():
        # a node its parent stopped reading early returns fewer rows than estimated without
        # the estimate being wrong: only an underestimate counts there
        overestimate = node.actual_rows is not None and node.actual_rows < node.plan_rows
        if not (id(node) in stopped_early and overestimate):
            out.extend(_misestimate(node, inputs.tables, inputs.settings))
    return out


def nested_loop_issues(plan: Plan, inputs: PlanInputs) -> list[PlanIssue]:
    return [i for node in plan.walk() for i in _nested_loop(node, plan, inputs.settings)]


#: each plan check's rule, by check id; a check runs its own, so one failing rule costs
#: only its own findings
RULES: dict[str, Callable[[Plan, PlanInputs], list[PlanIssue]]] = {
    "plan_seq_scan": seq_scan_issues,
    "plan_disk_sort": disk_sort_issues,
    "plan_row_misestimate": misestimate_issues,
    "plan_nested_loop": nested_loop_issues,
}


def diagnose(
    plan: Plan,
    *,
    tables: Mapping[str, Table],
    setting: PlanSetting = DEFAULT_SETTING,
    settings: PlanSettings | None = None,
    temp_blocks_written: int = 0,
) -> list[PlanIssue]:
    """Every rule's problems in `plan`, rule by rule."""
    inputs = PlanInputs(tables, setting, settings or PlanSettings(), temp_blocks_written)
    return [issue for rule in RULES.values() for issue in rule(plan, inputs)]


#: nodes that read all of their input before returning anything: a Limit above them does
#: not stop what is below them
_BLOCKING = frozenset({"Sort", "Hash", "Materialize"})
_BLOCKING_STRATEGIES = frozenset({"Hashed", "Plain"})


def stopped_early_nodes(plan: Plan) -> set[int]:
    """ids of the nodes whose consumer may stop reading them before they are exhausted:
    below a Limit (down to the first node that reads all its input), both sides of a
    Merge Join (it stops when either side runs out), the inner side of a semi or anti join
    (one match is enough) and sub-plans (EXISTS stops at the first row)."""
    found: set[int] = set()

    def visit(node: PlanNode, early: bool) -> None:
        if early:
            found.add(id(node))
        blocking = node.node_type in _BLOCKING or (
            node.node_type in {"Aggregate", "SetOp"} and node.strategy in _BLOCKING_STRATEGIES
        )
        for child in node.children:
            child_early = early and not blocking
            if node.node_type == "Limit" or child.parent_relationship in {"SubPlan", "InitPlan"}:
                child_early = True
            if node.node_type == "Merge Join":
                child_early = True
            if node.join_type in {"Semi", "Anti"} and child is node.inner:
                child_early = True
            visit(child, child_early)

    visit(plan.root, False)
    return found


def _seq_scan(
    node: PlanNode,
    tables: Mapping[str, Table],
    settings: PlanSettings,
    names: IndexNames | None = None,
) -> list[PlanIssue]:
    if node.node_type != "Seq Scan" or node.relation is None or not node.filter:
        return []
    table = tables.get(node.relation)
    if table is None or table.rows < settings.seq_scan_min_rows:
        return []
    if node.analyzed:
        if not node.executed or node.actual_rows is None:
            return []
        kept = node.actual_rows
        read = kept + (node.rows_removed_by_filter or 0)
        discard = 1 - kept / read if read else 0.0
        measured = "measured"
    else:
        # workers split the rows of a parallel scan; the table's row count is the total
        workers = int(node.extra.get("Workers Planned") or 0) or 1
        kept = node.plan_rows * (workers + 1 if node.extra.get("Parallel Aware") else 1)
        discard = 1 - kept / table.rows if table.rows else 0.0
        measured = "estimated"
    if discard < settings.seq_scan_discard_ratio:
        return []
    # only this scan's own columns: in a correlated filter (o.customer_id = c.id) the other
    # side belongs to the outer table
    columns = expression_columns(node.filter, node.alias)
    schema, name = _split(node.relation)
    target = f"{node.relation}({', '.join(columns)})" if columns else node.relation
    fix_sql = None
    if columns:
        # the same definition as the advisor's Candidate and fk_without_index: one index, one
        # name, one fix
        keys = tuple(quote_ident(c) for c in columns)
        stem = name_stem((name, *columns))
        index = (
            names.name(schema, stem, (name, keys, ()))
            if names is not None
            else unique_name(stem, ())
        )
        fix_sql = (
            f"CREATE INDEX CONCURRENTLY {quote_ident(index)} ON {qualified(schema, name)} "
            f"({', '.join(keys)});"
        )
    return [
        PlanIssue(
            check="plan_seq_scan",
            severity=Severity.warning,
            node=node,
            relation=node.relation,
            columns=columns,
            title=(
                f"Sequential scan of {node.relation} ({table.rows:,.0f} rows) keeps "
                f"{1 - discard:.1%} of them"
            ),
            detail=(
                f"The filter {node.filter} discards {discard:.1%} of the rows read ({measured}); "
                f"every execution reads the whole table ({human_bytes(table.heap_bytes)})."
            ),
            recommendation=(
                f"Index {target} so the rows are found without reading the table; "
                "`opscope indexes advise` costs the candidates against the whole workload."
            ),
            fix_sql=fix_sql,
            evidence={
                "node": node.node_type,
                "relation": node.relation,
                "filter": node.filter,
                "discard_ratio": round(discard, 4),
                "rows_kept": kept,
                "table_rows": table.rows,
                "table_bytes": table.heap_bytes,
                "schema": schema,
                "table": name,
            },
        )
    ]


_SPILL_NODES = {"Sort", "Incremental Sort", "Hash", "Aggregate", "SetOp", "WindowAgg"}


def _disk_sort(
    node: PlanNode, plan: Plan, setting: PlanSetting, temp_blocks_written: int
) -> list[PlanIssue]:
    if node.node_type not in _SPILL_NODES:
        return []
    spilled_kb: float = 0.0
    how = ""
    if node.sort_space_type == "Disk" or "external" in (node.sort_method or ""):
        spilled_kb = float(node.sort_space_kb or 0)
        how = f"sort method {node.sort_method} used {node.sort_space_kb or 0} kB of disk"
    elif node.hash_batches and node.hash_batches > 1:
        spilled_kb = float(node.peak_memory_kb or 0) * node.hash_batches
        how = (
            f"the hash table was split into {node.hash_batches} batches "
            f"(planned {node.original_hash_batches})"
        )
    elif (node.hashagg_batches and node.hashagg_batches > 1) or node.disk_usage_kb:
        spilled_kb = float(node.disk_usage_kb or 0)
        how = f"hash aggregate wrote {node.disk_usage_kb or 0} kB to disk"
    elif not node.analyzed and temp_blocks_written and node.node_type in {"Sort", "Hash"}:
        estimate_kb = node.plan_rows * max(node.plan_width, 1) / 1024
        # hash tables may use hash_mem_multiplier times work_mem before they spill
        limit_kb = setting.work_mem_kb * (
            setting.hash_mem_multiplier if node.node_type == "Hash" else 1.0
        )
        if estimate_kb <= limit_kb:
            return []
        spilled_kb = estimate_kb
        how = (
            f"it is expected to hold about {human_bytes(int(estimate_kb * 1024))}, over "
            f"work_mem, and the statement wrote {temp_blocks_written} temp blocks"
        )
    if not how:
        return []
    if node.analyzed and node.own_temp_written_blocks:
        spilled_kb = max(spilled_kb, node.own_temp_written_blocks * 8.0)
    suggest = _suggest_mem_kb(spilled_kb) if spilled_kb else setting.work_mem_kb * 4
    index_hint = ""
    if node.node_type == "Sort" and node.sort_key:
        index_hint = (
            f" An index on the sort key ({', '.join(node.sort_key)}) can remove the sort "
            "when the rows come from one table."
        )
    return [
        PlanIssue(
            check="plan_disk_sort",
            severity=Severity.warning,
            node=node,
            relation=_only_relation(node),
            title=f"{node.node_type} spilled to disk: {how}",
            detail=(
                f"work_mem is {_mem(setting.work_mem_kb)}; what did not fit went to temporary "
                "files, which is many times slower than memory."
            ),
            recommendation=(
                f"Raise work_mem to {_mem(suggest)} for this statement's session or role "
                "(not server-wide: each sort and hash of each connection may use it)." + index_hint
            ),
            fix_sql=f"SET work_mem = '{_mem(suggest)}';",
            evidence={
                "node": node.node_type,
                "sort_key": list(node.sort_key),
                "sort_method": node.sort_method,
                "spilled_kb": round(spilled_kb, 1),
                "temp_blocks_written": node.own_temp_written_blocks or temp_blocks_written,
                "hash_batches": node.hash_batches,
                "work_mem_kb": setting.work_mem_kb,
                "suggested_work_mem": _mem(suggest),
                "estimated": not node.analyzed,
            },
        )
    ]


def _only_relation(node: PlanNode) -> str | None:
    relations = node.relations()
    return next(iter(relations)) if len(relations) == 1 else None


def _off_by(node: PlanNode) -> float:
    if not node.executed or node.actual_rows is None:
        return 1.0
    est, act = node.plan_rows, node.actual_rows
    return max(est, act) / max(min(est, act), 1.0)


def _misestimated(node: PlanNode, settings: PlanSettings) -> bool:
    if not node.executed or node.actual_rows is None:
        return False
    return (
        _off_by(node) >= settings.misestimate_factor
        and max(node.plan_rows, node.actual_rows) >= settings.misestimate_min_rows
    )


def _misestimate(
    node: PlanNode, tables: Mapping[str, Table], settings: PlanSettings
) -> list[PlanIssue]:
    if not _misestimated(node, settings):
        return []
    # report where the error starts: a misestimated child explains its parents' errors
    if any(_misestimated(c, settings) for c in node.children):
        return []
    assert node.actual_rows is not None
    relation = node.relation or _only_relation(node)
    table = tables.get(relation) if relation else None
    condition = node.filter or node.index_cond or node.recheck_cond or node.join_cond or ""
    columns = expression_columns(condition, node.alias) if condition else ()
    fix: str | None = None
    if relation and table is not None:
        schema, name = _split(relation)
        target = qualified(schema, name)
        stale = table.last_analyzed is None or (
            table.n_mod_since_analyze >= 0.1 * max(table.rows, 1.0)
        )
        if stale:
            since = (
                "has never been analyzed"
                if table.last_analyzed is None
                else f"had {table.n_mod_since_analyze:,} rows changed since its last ANALYZE"
            )
            rec = f"Refresh the statistics: {relation} {since}."
            fix = f"ANALYZE {target};"
        elif len(columns) >= 2:
            # 63 bytes, cut on a character, keeping the suffix (as index names are)
            stat_name = quote_ident(fit(name_stem((name, *columns)), "_stats"))
            cols = ", ".join(quote_ident(c) for c in columns)
            rec = (
                f"The columns {', '.join(columns)} are filtered together and are probably "
                "correlated; extended statistics let the planner see that."
            )
            fix = (
                f"CREATE STATISTICS {quote_ident(schema)}.{stat_name} (dependencies, ndistinct, "
                f"mcv) ON {cols} FROM {target}; ANALYZE {target};"
            )
        elif columns:
            col = quote_ident(columns[0])
            rec = (
                f"The statistics of {relation}.{columns[0]} are too coarse for this value; "
                "raise its statistics target."
            )
            fix = f"ALTER TABLE {target} ALTER COLUMN {col} SET STATISTICS 1000; ANALYZE {target};"
        else:
            rec = f"Analyze {relation}, or rewrite the condition so the planner can estimate it."
            fix = f"ANALYZE {target};"
    else:
        rec = (
            "Analyze the tables involved; for joins on correlated columns, CREATE STATISTICS; "
            "or rewrite the condition so it can be estimated."
        )
    direction = "under" if node.actual_rows > node.plan_rows else "over"
    return [
        PlanIssue(
            check="plan_row_misestimate",
            severity=Severity.warning,
            node=node,
            relation=relation,
            columns=columns,
            title=(
                f"{node.node_type}{' on ' + relation if relation else ''}: planner expected "
                f"{node.plan_rows:,.0f} rows, got {node.actual_rows:,.0f} "
                f"({_off_by(node):,.0f}x {direction}estimate)"
            ),
            detail=(
                "Plans are chosen from these estimates: join methods, join order and memory "
                "all follow from a row count that is wrong here."
                + (f" Condition: {condition}." if condition else "")
            ),
            recommendation=rec,
            fix_sql=fix,
            evidence={
                "node": node.node_type,
                "relation": relation,
                "condition": condition or None,
                "plan_rows": node.plan_rows,
                "actual_rows": node.actual_rows,
                "loops": node.actual_loops,
                "factor": round(_off_by(node), 1),
                "table_rows": table.rows if table else None,
                "rows_modified_since_analyze": table.n_mod_since_analyze if table else None,
                "last_analyzed": (
                    table.last_analyzed.isoformat() if table and table.last_analyzed else None
                ),
            },
        )
    ]


def _repeated(inner: PlanNode) -> list[PlanNode]:
    """Nodes of a nested loop's inner side that run once per outer row: not those below a
    Materialize, Memoize or Hash, which are read once and kept."""
    out: list[PlanNode] = []
    stack = [inner]
    while stack:
        node = stack.pop()
        out.append(node)
        if node.node_type not in {"Materialize", "Memoize", "Hash"}:
            stack.extend(node.children)
    return out


def _nested_loop(node: PlanNode, plan: Plan, settings: PlanSettings) -> list[PlanIssue]:
    if node.node_type != "Nested Loop":
        return []
    inner, outer = node.inner, node.outer
    if inner is None or outer is None:
        return []
    if node.analyzed:
        if not node.executed or inner.actual_loops is None:
            return []
        loops = inner.actual_loops * 1.0
    else:
        loops = outer.plan_rows
    if loops < settings.nested_loop_min_loops:
        return []
    scans = [n for n in _repeated(inner) if n.relation is not None]
    # a scan the loop really repeats: under Materialize, Memoize or Hash it ran once
    full = [
        n
        for n in scans
        if n.node_type == "Seq Scan"
        and (not n.analyzed or (n.actual_loops or 0) >= settings.nested_loop_min_loops)
    ]
    share = None
    if node.analyzed and node.actual_total_ms and inner.actual_total_ms is not None:
        share = min(
            inner.actual_total_ms
            * loops
            / max(node.actual_total_ms * (node.actual_loops or 1), 1e-9),
            1.0,
        )
    # many cheap index probes are what a nested loop is for; flag repeated full scans, or
    # index probes that take most of the time and throw most of what they read away
    wasteful = [
        n for n in scans if n.analyzed and (n.rows_removed_by_filter or 0) > (n.actual_rows or 0)
    ]
    if not full and (share is None or share < 0.5 or not wasteful):
        return []
    probe = full[0] if full else wasteful[0]
    condition = probe.filter or node.join_filter or probe.index_cond or ""
    columns = expression_columns(condition, probe.alias) if condition else ()
    # the columns the probe already finds through its index need no new index
    indexed = set(expression_columns(probe.index_cond, probe.alias)) if probe.index_cond else set()
    if probe.index_cond and indexed:
        # keep what the index already finds in front, then what the filter throws away
        lead = expression_columns(probe.index_cond, probe.alias)
        columns = tuple(dict.fromkeys([*lead, *columns]))
        if not [c for c in columns if c not in indexed]:
            return []
    relation = probe.relation
    target = f"{relation}({', '.join(columns)})" if relation and columns else relation or "it"
    return [
        PlanIssue(
            check="plan_nested_loop",
            severity=Severity.warning,
            node=node,
            relation=relation,
            columns=columns,
            title=(
                f"Nested loop runs its inner side {loops:,.0f} times"
                + (f", scanning {relation} each time" if full else "")
            ),
            detail=(
                "Each row of the outer side repeats the inner side; with a full scan inside, "
                "the work grows with the product of both sides."
                + (f" The inner side takes {share:.0%} of the join's time." if share else "")
            ),
            recommendation=(
                f"Index {target} so each probe is an index lookup; if the outer row count is "
                "misestimated, ANALYZE its table so the planner can choose a hash join."
            ),
            evidence={
                "node": node.node_type,
                "join_type": node.join_type,
                "inner_loops": loops,
                "inner_node": probe.node_type,
                "inner_relation": relation,
                "condition": condition or None,
                "estimated": not node.analyzed,
            },
        )
    ]

"""Plan issues as findings: one shape for `opscope explain` and the checks of `analyze db`."""

from __future__ import annotations

from opscope.db.plans.diagnose import PlanIssue
from opscope.db.plans.model import Plan, PlanNode
from opscope.db.plans.reviewed import ReviewedStatement
from opscope.findings import Finding
from opscope.redact import redact
from opscope.sqltext import short_query

CATEGORY = "plans"


def node_index(plan: Plan, node: PlanNode) -> int | None:
    """The node's position in the plan, depth first from 0 at the root: what a plan finding
    names in `evidence.plan_node`, so the tree can show it where it belongs."""
    return next((i for i, n in enumerate(plan.walk()) if n is node), None)


def issue_finding(issue: PlanIssue, *, target: str, reviewed: ReviewedStatement) -> Finding:
    query = redact(reviewed.query)
    obj = issue.relation or f"query:{reviewed.query_key}"
    evidence = {
        "query": query,
        **reviewed.evidence(),
        # the plan's own texts (a filter) repeat the statement's constants
        **{k: redact(v) if isinstance(v, str) else v for k, v in issue.evidence.items()},
    }
    if reviewed.result is not None:
        evidence["plan_node"] = node_index(reviewed.result.plan, issue.node)
    return Finding.make(
        check=issue.check,
        category=CATEGORY,
        severity=issue.severity,
        target=target,
        object=obj,
        title=f"{issue.title} in: {short_query(query, 60)}",
        key=(reviewed.query_key, issue.node.node_type, issue.node.relation or ""),
        columns=list(issue.columns),
        detail=redact(issue.detail),
        evidence=evidence,
        recommendation=issue.recommendation,
        fix_sql=issue.fix_sql,
    )

"""Plan issues as findings: one shape for `opscope explain` and the checks of `analyze db`."""

from __future__ import annotations

from typing import Any

from opscope.db.plans.diagnose import PlanIssue
from opscope.findings import Finding
from opscope.sqltext import short_query

CATEGORY = "plans"


def issue_finding(
    issue: PlanIssue,
    *,
    target: str,
    query: str,
    query_key: str,
    statement: dict[str, Any] | None = None,
) -> Finding:
    """`query_key` tells statements apart: the pg_stat_statements queryid, or the parser's
    fingerprint of a statement given on the command line."""
    obj = issue.relation or f"query:{query_key}"
    evidence: dict[str, Any] = {"query": query, **(statement or {}), **issue.evidence}
    return Finding.make(
        check=issue.check,
        category=CATEGORY,
        severity=issue.severity,
        target=target,
        object=obj,
        title=f"{issue.title} in: {short_query(query, 60)}",
        key=(query_key, issue.node.node_type, issue.node.relation or ""),
        columns=list(issue.columns),
        detail=issue.detail,
        evidence=evidence,
        recommendation=issue.recommendation,
        fix_sql=issue.fix_sql,
    )

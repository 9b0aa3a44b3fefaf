"""Advisor recommendations as findings: the same shape for `indexes advise` and
`analyze db`."""

from __future__ import annotations

from typing import Any

from opscope.db.advisor.model import (
    KEEP_PROTECTED,
    KEEP_SCANNED,
    AdvisorResult,
    Recommendation,
)
from opscope.db.catalog import Index
from opscope.findings import Finding, Severity
from opscope.sqltext import qualified
from opscope.units import human_bytes

CATEGORY = "indexes"


def _statements(rec: Recommendation) -> list[dict[str, Any]]:
    return [
        {
            **e.statement.evidence(),
            "cost_before": round(e.cost_before, 2),
            "cost_after": round(e.cost_after, 2),
        }
        for e in rec.effects
    ]


def _improvement(rec: Recommendation) -> float:
    before = sum(e.cost_before * e.statement.calls for e in rec.effects)
    after = sum(e.cost_after * e.statement.calls for e in rec.effects)
    return 1 - after / before if before > 0 else 0.0


def _time_saved_ms(rec: Recommendation) -> float:
    """Execution time the helped statements would have saved over the statistics window,
    if time fell with planner cost: an estimate, which is why `--verify` exists."""
    return sum(
        e.statement.total_ms * (1 - e.cost_after / e.cost_before)
        for e in rec.effects
        if e.cost_before > 0 and e.cost_after < e.cost_before
    )


def _enforces(old: Index) -> str:
    if old.is_primary:
        return "the primary key"
    if old.constraint_name is not None:
        return f"the constraint {old.constraint_name}"
    if old.is_unique:
        return "uniqueness"
    if old.is_exclusion:
        return "an exclusion constraint"
    return "the table's replica identity (logical replication)"


def _keep(rec: Recommendation, old: Index) -> str:
    """Why the replaced index stays, in words."""
    if rec.keep_reason == KEEP_PROTECTED:
        return f" {old.qualified} enforces {_enforces(old)}: keep it."
    if rec.keep_reason == KEEP_SCANNED:
        return (
            f" {old.qualified} was scanned {old.idx_scan} times since the table statistics "
            f"were reset, {rec.replaced_scans_elsewhere} more than the studied statements "
            "account for: other statements may use it; keep it until they are checked."
        )
    return f" Other statements still use {old.qualified}: keep it."


def _rate(windows: dict[str, float | str | None] | None) -> str:
    rate = (windows or {}).get("write_rate")
    return f" The cost of the index on writes counts: {rate}." if isinstance(rate, str) else ""


def recommendation_finding(
    rec: Recommendation,
    *,
    target: str,
    windows: dict[str, float | str | None] | None = None,
) -> Finding:
    cand = rec.candidate
    helped = len(rec.effects)
    improvement = _improvement(rec)
    unverified = "" if rec.verified else " (unverified)"
    size = f", about {human_bytes(rec.size_bytes)}" if rec.size_bytes is not None else ""
    evidence: dict[str, Any] = {
        "table": cand.relation,
        "definition": cand.label(),
        "include": list(cand.include),
        "statements": _statements(rec),
        "cost_before": round(sum(e.cost_before for e in rec.effects), 2),
        "cost_after": round(sum(e.cost_after for e in rec.effects), 2),
        "improvement": round(improvement, 4),
        "workload_cost_saved": round(rec.saving, 1),
        # the benefit keys a fix is ranked by (docs/findings.md)
        "cost_saving": round(rec.saving, 1),
        "write_penalty": round(rec.write_penalty, 1),
        # writes are counted from the table statistics, savings from pg_stat_statements:
        # the windows of each, and the scale that compares them as rates
        "write_windows": dict(windows or {}),
        "size_bytes": rec.size_bytes,
        "size": human_bytes(rec.size_bytes) if rec.size_bytes is not None else None,
        "verified": rec.verified,
        "method": "hypopg" if rec.verified else "pg_stats selectivity",
    }
    if rec.selectivity is not None:
        evidence["estimated_share_of_rows"] = round(rec.selectivity, 6)
    if rec.verified:
        evidence["time_saved_ms"] = round(_time_saved_ms(rec), 1)
    plural = "" if helped == 1 else "s"
    how = (
        "the planner, costing the workload with this index as a hypothetical index (hypopg), "
        f"expects {helped} statement{plural} to cost {improvement:.0%} less"
        if rec.verified
        else (
            "hypopg is not available, so this is ranked from pg_stats selectivity alone and the "
            "planner has not confirmed it would use the index"
        )
    )
    if rec.replaces is not None:
        old = rec.replaces
        drop = f" DROP INDEX CONCURRENTLY {qualified(old.schema, old.name)};"
        return Finding.make(
            check="composite_index_order",
            category=CATEGORY,
            severity=Severity.warning,
            target=target,
            object=old.qualified,
            columns=list(cand.key_names),
            key=cand.include,
            title=(
                f"Index {old.qualified} has its columns in the wrong order for the workload: "
                f"({', '.join(cand.key_names)}) serves it better{unverified}"
            ),
            detail=(
                f"{old.qualified} is ({', '.join(old.key_defs)}); with the columns reordered, {how}"
                f"{size}." + ("" if rec.drop_replaced else _keep(rec, old)) + _rate(windows)
            ),
            evidence={
                **evidence,
                "replaces": old.qualified,
                "replaces_definition": old.definition,
                "replaces_protected": old.protected,
                "replaces_idx_scan": old.idx_scan,
                "replaces_scans_unexplained": rec.replaced_scans_elsewhere,
            },
            recommendation=(
                f"Build the reordered index, then drop {old.qualified}."
                if rec.drop_replaced
                else "Build the reordered index next to it."
            ),
            fix_sql=cand.fix_sql(rec.name) + (drop if rec.drop_replaced else ""),
        )
    return Finding.make(
        check="missing_index",
        category=CATEGORY,
        severity=Severity.warning if rec.verified else Severity.info,
        target=target,
        object=cand.relation,
        columns=list(cand.key_names),
        key=cand.include,
        title=(
            f"Missing index on {cand.label()}: {helped} statement{plural}, "
            f"{improvement:.0%} cheaper{unverified}"
        ),
        detail=f"Costed against the workload: {how}{size}.{_rate(windows)}",
        evidence=evidence,
        recommendation=(
            "Create it concurrently (no write lock). The write overhead on the table is "
            "counted in the choice."
        ),
        fix_sql=cand.fix_sql(rec.name),
    )


def result_findings(result: AdvisorResult, *, target: str) -> list[Finding]:
    return [
        recommendation_finding(r, target=target, windows=result.write_windows)
        for r in result.recommendations
    ]

"""Plan checks: the top statements' plans, diagnosed (see opscope.db.plans)."""

from __future__ import annotations

from collections.abc import Iterable

from opscope.checks import CheckFailed
from opscope.db.checks.base import DbCheck
from opscope.db.context import DbContext
from opscope.findings import Finding


class PlanCheck(DbCheck):
    category = "plans"

    def run(self, context: DbContext) -> Iterable[Finding]:
        # imported here: opscope.db.plans uses helpers of this package, and the package's
        # __init__ imports this module
        from opscope.db.plans.findings import issue_finding
        from opscope.db.plans.review import review

        reviewed = review(context)
        # the server refusing every EXPLAIN (permissions, timeouts) is worth an error;
        # statements we decline to explain (utility commands) are not
        refused = [r.error for r in reviewed if r.error and r.error.startswith("EXPLAIN failed")]
        if reviewed and len(refused) == len(reviewed):
            raise CheckFailed(f"no top statement could be explained: {refused[0]}")
        for r in reviewed:
            s = r.statement
            for issue in r.issues:
                if issue.check != self.id:
                    continue
                yield issue_finding(
                    issue,
                    target=context.target,
                    query=s.query,
                    query_key=str(s.queryid),
                    statement={
                        "queryid": s.queryid,
                        "calls": s.calls,
                        "mean_ms": round(s.mean_exec_time, 3),
                        "total_ms": round(s.total_exec_time, 3),
                        "analyzed": r.result.plan.analyzed if r.result else False,
                        "generic_plan": r.result.plan.generic if r.result else False,
                    },
                )


class PlanSeqScan(PlanCheck):
    id = "plan_seq_scan"
    summary = (
        "A top statement's plan reads a table of at least 10,000 rows sequentially while its "
        "filter discards at least 90% of the rows."
    )


class PlanDiskSort(PlanCheck):
    id = "plan_disk_sort"
    summary = (
        "A top statement's sort, hash or hash aggregate spilled to disk (external merge, "
        "several hash batches, temp blocks) because it did not fit in work_mem."
    )


class PlanRowMisestimate(PlanCheck):
    id = "plan_row_misestimate"
    summary = (
        "Estimated and actual rows differ 10x or more at a plan node (EXPLAIN ANALYZE, "
        "read-only statements only)."
    )


class PlanNestedLoop(PlanCheck):
    id = "plan_nested_loop"
    summary = (
        "A nested loop runs its inner side 1,000 times or more, with a full scan inside or "
        "most of the join's time spent there."
    )


CHECKS = [PlanSeqScan(), PlanDiskSort(), PlanRowMisestimate(), PlanNestedLoop()]

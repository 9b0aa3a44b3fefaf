"""Plan checks: each diagnoses the reviewed plans with its own rule (opscope.db.plans), under
`analyze db` (the top statements) and `opscope explain` (the statement given)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from opscope.checks import CheckFailed, Skipped
from opscope.db.checks.base import DbCheck
from opscope.db.context import DATABASE, STATEMENT, DbContext
from opscope.db.plans.diagnose import RULES, PlanInputs, PlanIssue
from opscope.db.plans.findings import issue_finding
from opscope.db.plans.model import Plan
from opscope.db.plans.review import plan_inputs, reviewed_plans
from opscope.findings import Finding

#: SQLSTATEs of an EXPLAIN the server refused for what was going on, not for the statement:
#: lock_not_available, query_canceled (statement_timeout), insufficient_privilege,
#: deadlock_detected
OPERATIONAL = frozenset({"55P03", "57014", "42501", "40P01"})


class PlanCheck(DbCheck):
    category = "plans"
    scopes = (DATABASE, STATEMENT)

    def rule(self, plan: Plan, inputs: PlanInputs) -> list[PlanIssue]:
        """What is wrong in `plan`, by this check's rule (opscope.db.plans.diagnose)."""
        return RULES[self.id](plan, inputs)

    def run(self, context: DbContext) -> Iterable[Finding | Skipped]:
        return list(self._findings(context))

    def _findings(self, context: DbContext) -> Iterator[Finding | Skipped]:
        reviewed = reviewed_plans(context)
        # the server refusing every EXPLAIN (permissions, timeouts) is worth an error;
        # statements we decline to explain (utility commands) are not
        refused = [r.error for r in reviewed if r.error and r.error.startswith("EXPLAIN failed")]
        if reviewed and len(refused) == len(reviewed):
            raise CheckFailed(f"no top statement could be explained: {refused[0]}")
        for r in reviewed:
            if r.result is None:
                if r.sqlstate in OPERATIONAL:
                    # a lock, a timeout: this statement's plan went unexamined, and says so
                    # (a statement opscope cannot plan generically is its own limit: silent)
                    what = f"queryid {r.statement.queryid}" if r.statement else r.query_key
                    yield Skipped(f"could not explain a top statement ({what}): {r.error}")
                continue
            for issue in self.rule(r.result.plan, plan_inputs(context, r)):
                yield issue_finding(issue, target=context.target, reviewed=r)


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

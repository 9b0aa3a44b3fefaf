"""Index advisor checks: indexes the workload needs (see opscope.db.advisor), under
`analyze db` (bounded) and `opscope indexes advise` (the full study)."""

from __future__ import annotations

from collections.abc import Iterable

from opscope.db.advisor.advise import advise, statements_window
from opscope.db.advisor.findings import result_findings
from opscope.db.advisor.model import AdvisorResult
from opscope.db.checks.base import DbCheck
from opscope.db.context import DATABASE, WORKLOAD, DbContext
from opscope.db.plans.review import cached_on, samples
from opscope.findings import Finding

#: where the advisor's result is kept in `DbContext.shared` for the other advisor checks
#: and for `advise_indexes`' summary
RESULT_KEY = "advisor"


def advisor_result(context: DbContext) -> AdvisorResult:
    """Run the advisor once per context and share its result."""

    def run() -> AdvisorResult:
        settings = context.advisor
        if context.scope == DATABASE:
            # inside `analyze db` the advisor shares the run with every other check: bounded
            # tighter than `opscope indexes advise`, which is there for the full study
            settings = settings.model_copy(
                update={
                    "statements": min(settings.statements, 20),
                    "max_candidates": min(settings.max_candidates, 40),
                    "time_budget_s": min(settings.time_budget_s, 15.0),
                }
            )
        snapshot = context.statements
        return advise(
            context.runner.conn,
            context.catalog,
            snapshot.statements,
            examples={**samples(context), **context.workload_examples},
            settings=settings,
            statements_window_s=statements_window(snapshot, context.catalog.summary),
        )

    return cached_on(context, RESULT_KEY, run)


class AdvisorCheck(DbCheck):
    category = "indexes"
    scopes = (DATABASE, WORKLOAD)

    def run(self, context: DbContext) -> Iterable[Finding]:
        found = result_findings(advisor_result(context), target=context.target)
        return [f for f in found if f.check == self.id]


class MissingIndex(AdvisorCheck):
    id = "missing_index"
    summary = (
        "An index the workload needs: costed on the top statements of pg_stat_statements with "
        "hypothetical indexes (hypopg), it cuts their planner cost by at least 20% and saves "
        "more than it costs writes; without hypopg, ranked by pg_stats selectivity (unverified)."
    )


class CompositeIndexOrder(AdvisorCheck):
    id = "composite_index_order"
    summary = (
        "An existing composite index has its columns in an order that serves the workload "
        "worse than the same columns reordered (costed with hypopg)."
    )


CHECKS = [MissingIndex(), CompositeIndexOrder()]

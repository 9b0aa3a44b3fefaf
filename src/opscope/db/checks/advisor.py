"""Index advisor checks: indexes the workload needs (see opscope.db.advisor)."""

from __future__ import annotations

from collections.abc import Iterable

from opscope.db.checks.base import DbCheck
from opscope.db.context import DbContext
from opscope.findings import Finding


def advisor_findings(context: DbContext) -> list[Finding]:
    """Run the advisor once per context, bounded for `analyze db`, and share its findings."""
    # imported here: the advisor uses helpers of this package, whose __init__ imports us
    from opscope.db.advisor.advise import advise, statements_window
    from opscope.db.advisor.findings import result_findings
    from opscope.db.plans.review import cached_on, samples

    def run() -> list[Finding]:
        # inside `analyze db` the advisor shares the run with every other check: bounded
        # tighter than `opscope indexes advise`, which is there for the full study
        configured = context.advisor
        settings = configured.model_copy(
            update={
                "statements": min(configured.statements, 20),
                "max_candidates": min(configured.max_candidates, 40),
                "time_budget_s": min(configured.time_budget_s, 15.0),
            }
        )
        snapshot = context.statements
        result = advise(
            context.runner.conn,
            context.catalog,
            snapshot.statements,
            examples=samples(context),
            settings=settings,
            statements_window_s=statements_window(snapshot, context.catalog.summary),
        )
        return result_findings(result, target=context.target)

    found: list[Finding] = cached_on(context, "advisor", run)
    return found


class AdvisorCheck(DbCheck):
    category = "indexes"

    def run(self, context: DbContext) -> Iterable[Finding]:
        return [f for f in advisor_findings(context) if f.check == self.id]


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

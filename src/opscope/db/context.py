"""What the database checks read: one target's catalog, statements and settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from opscope.checks import MAIN, CheckFailed
from opscope.db.catalog import Catalog, Summary
from opscope.db.connection import SqlRunner
from opscope.db.history import SizeHistory
from opscope.db.monitor.snapshot import StoredWindow, Usage
from opscope.db.plans.reviewed import ReviewedStatement
from opscope.db.plans.samples import Sample
from opscope.db.settings import AdvisorSettings, DbThresholds, PlanSettings, PostgresSettings
from opscope.db.statements import StatementSnapshot, read_statements, windowed

KIND = "postgresql"

# The analyses of a PostgreSQL target; a check says in which it runs with its `scopes`.
#: `opscope analyze db`: the whole database
DATABASE = MAIN
#: `opscope explain`: one statement given by the user, in `DbContext.explained`
STATEMENT = "statement"
#: `opscope indexes advise`: the workload of pg_stat_statements, studied in full
WORKLOAD = "workload"


@dataclass
class DbContext:
    target: str
    runner: SqlRunner
    settings: PostgresSettings = field(default_factory=PostgresSettings)
    scope: str = DATABASE
    #: seconds between two pg_stat_statements snapshots; None reads the cumulative counters
    window_s: float | None = None
    #: table sizes from the previous run against this target, for growth
    history: SizeHistory | None = None
    #: in the statement scope, the statement that was explained
    explained: ReviewedStatement | None = None
    #: work several checks share (the plan review, the advisor's result), computed once
    shared: dict[str, Any] = field(default_factory=dict)
    #: `analyze db --since`: two stored snapshots whose difference replaces the cumulative
    #: counters of statements, tables and indexes
    window: StoredWindow | None = None
    #: the whole window the service's store observed, for index usage across statistics
    #: resets and failovers
    observed: StoredWindow | None = None
    #: the workload when it does not come from pg_stat_statements as it is (`indexes advise
    #: --statement/--sql-file/--log/--activity`, or filtered by --min-calls/--min-time)
    workload: StatementSnapshot | None = None
    #: literal examples of the workload's statements, by queryid, to plan them with
    workload_examples: dict[int, Sample] = field(default_factory=dict)
    catalog: Catalog = field(init=False)

    def __post_init__(self) -> None:
        self.catalog = Catalog(self.runner)

    @property
    def thresholds(self) -> DbThresholds:
        return self.settings.thresholds

    @property
    def plans(self) -> PlanSettings:
        return self.settings.plans

    @property
    def advisor(self) -> AdvisorSettings:
        return self.settings.advisor

    @property
    def summary(self) -> Summary:
        return self.catalog.summary

    @property
    def now(self) -> datetime:
        return self.catalog.summary.now

    def observed_index(self, qualified: str) -> Usage | None:
        """An index's scans over the stored window, when that window reaches further back
        than the server's own statistics (None otherwise, and under --since)."""
        if self.window is not None or self.observed is None:
            return None
        if "observed_indexes" not in self.shared:
            self.shared["observed_indexes"] = self.observed.indexes()
        usage: Usage | None = self.shared["observed_indexes"].get(qualified)
        if usage is None or usage.since >= self.summary.stats_since:
            return None
        return usage

    @property
    def statements(self) -> StatementSnapshot:
        """The workload the checks study: `workload` when set, else pg_stat_statements (the
        stored window's under --since)."""
        return self.workload if self.workload is not None else self.pg_stat_statements

    @cached_property
    def pg_stat_statements(self) -> StatementSnapshot:
        if self.window is not None:
            stored = self.window.statements()
            if stored is None:
                raise CheckFailed("the stored snapshots hold no pg_stat_statements figures")
            return stored
        if self.window_s:
            return windowed(self.runner, self.window_s)
        return read_statements(self.runner)

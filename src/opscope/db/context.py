"""What the database checks read: one target's catalog, statements and settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from opscope.config import AdvisorSettings, DbThresholds, PlanSettings
from opscope.db.catalog import Catalog, Summary
from opscope.db.connection import SqlRunner
from opscope.db.history import SizeHistory
from opscope.db.statements import StatementSnapshot, read_statements, windowed

KIND = "postgresql"


@dataclass
class DbContext:
    target: str
    runner: SqlRunner
    thresholds: DbThresholds = field(default_factory=DbThresholds)
    #: seconds between two pg_stat_statements snapshots; None reads the cumulative counters
    window_s: float | None = None
    #: table sizes from the previous run against this target, for growth
    history: SizeHistory | None = None
    plans: PlanSettings = field(default_factory=PlanSettings)
    advisor: AdvisorSettings = field(default_factory=AdvisorSettings)
    #: work several checks share (the plan review, the advisor's result), computed once
    shared: dict[str, Any] = field(default_factory=dict)
    catalog: Catalog = field(init=False)

    def __post_init__(self) -> None:
        self.catalog = Catalog(self.runner)

    @property
    def summary(self) -> Summary:
        return self.catalog.summary

    @property
    def now(self) -> datetime:
        return self.catalog.summary.now

    @cached_property
    def statements(self) -> StatementSnapshot:
        if self.window_s:
            return windowed(self.runner, self.window_s)
        return read_statements(self.runner)

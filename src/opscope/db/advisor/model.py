"""What the advisor works on and returns: the studied statements, the effect of an index on
them, the recommendations and the run's result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opscope.db.advisor.candidates import Candidate
from opscope.db.advisor.predicates import TableUse
from opscope.db.catalog import Index

#: why an index the recommendation reorders must stay
KEEP_PROTECTED = "protected"  # it enforces uniqueness, a constraint, or the replica identity
KEEP_USED = "used_by_workload"  # a studied statement's plan still uses it with the new index
KEEP_SCANNED = "used_elsewhere"  # scanned more than the studied statements account for
KEEP_REASONS = (KEEP_PROTECTED, KEEP_USED, KEEP_SCANNED)
#: scans of a replaced index the studied statements do not explain, as a share of the
#: studied statements' calls on its table, above which other statements may depend on it
OTHER_SCANS_SHARE = 0.05


@dataclass(frozen=True)
class WorkloadStatement:
    key: int
    queryid: int
    #: the normalized text from pg_stat_statements
    query: str
    #: the text that is planned: a pg_qualstats example with real constants, when known
    text: str
    #: values of the $n in `text`, when pg_qualstats saw them bound
    params: tuple[str, ...] | None
    calls: int
    mean_ms: float
    total_ms: float
    rows: int
    uses: tuple[TableUse, ...]
    #: schema.table of each use, resolved against the catalog
    relations: tuple[str, ...]

    def evidence(self) -> dict[str, Any]:
        return {
            "queryid": self.queryid,
            "query": self.query,
            "calls": self.calls,
            "mean_ms": round(self.mean_ms, 3),
        }


@dataclass(frozen=True)
class Effect:
    statement: WorkloadStatement
    cost_before: float
    cost_after: float


@dataclass(frozen=True)
class Recommendation:
    candidate: Candidate
    effects: tuple[Effect, ...]
    #: workload cost saved (planner cost x calls), before the write penalty
    saving: float
    write_penalty: float
    size_bytes: int | None
    #: the existing index with the same columns in another order, when there is one
    replaces: Index | None = None
    #: True when the replaced index can go: it enforces nothing, no studied statement's
    #: plan still needs it, and it is not scanned more than the studied statements explain
    drop_replaced: bool = False
    #: why the replaced index must stay, when it must: one of KEEP_REASONS
    keep_reason: str | None = None
    #: scans of the replaced index the studied statements do not account for
    replaced_scans_elsewhere: int = 0
    #: the name to build it under: unique in its schema (set by `advise`)
    index_name: str | None = None

    @property
    def name(self) -> str:
        return self.index_name or self.candidate.index_name()

    #: costed with hypothetical indexes and the real planner; False for the fallback
    verified: bool = True
    #: the fallback's estimate of the share of rows one lookup matches
    selectivity: float | None = None


@dataclass
class AdvisorResult:
    recommendations: list[Recommendation] = field(default_factory=list)
    workload: list[WorkloadStatement] = field(default_factory=list)
    verified: bool = True
    candidates: int = 0
    costed: int = 0
    explains: int = 0
    partial: bool = False
    notes: list[str] = field(default_factory=list)
    #: the windows the savings (pg_stat_statements) and write costs (table statistics)
    #: were counted over, in seconds, and the scale that makes the writes a rate of the first
    write_windows: dict[str, float | str | None] = field(default_factory=dict)

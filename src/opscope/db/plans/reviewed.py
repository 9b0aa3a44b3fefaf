"""A statement whose plan the plan checks diagnose: one of `analyze db`'s top statements,
or the one given to `opscope explain`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opscope.db.plans.explain import ExplainResult
from opscope.db.statements import Statement


@dataclass(frozen=True)
class ReviewedStatement:
    #: the pg_stat_statements entry; None for a statement given on the command line
    statement: Statement | None
    #: the text that was explained: the normalized one, a pg_qualstats example, or the user's
    explained: str
    result: ExplainResult | None
    #: tells statements apart in finding ids: the queryid, or the parser's fingerprint
    query_key: str
    error: str | None = None
    #: the server's SQLSTATE when it refused the EXPLAIN (a lock or statement timeout)
    sqlstate: str | None = None

    @property
    def query(self) -> str:
        """The statement as findings show it."""
        return self.statement.query if self.statement is not None else self.explained.strip()

    def evidence(self) -> dict[str, Any]:
        """What plan findings say about the statement besides its plan."""
        s = self.statement
        if s is None:
            return {}
        return {
            "queryid": s.queryid,
            "calls": s.calls,
            "mean_ms": round(s.mean_exec_time, 3),
            "total_ms": round(s.total_exec_time, 3),
            "analyzed": self.result.plan.analyzed if self.result else False,
            "generic_plan": self.result.plan.generic if self.result else False,
        }

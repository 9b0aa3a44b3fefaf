"""Costing candidate indexes with hypopg and the real planner.

Hypothetical indexes live in the backend's memory: only this session's planner sees them,
nothing is written to the catalog, and `HypoSession` calls hypopg_reset() when it closes, so
the session can go on to other work (the plan review) with a clean planner.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import psycopg

from opscope.db.advisor.candidates import Candidate
from opscope.db.connection import SqlRunner
from opscope.db.plans.explain import ExplainFailed, explain
from opscope.db.plans.model import Plan


class HypoUnavailable(Exception):
    """hypopg is not installed in this database (or cannot be used by this role)."""


@dataclass(frozen=True)
class Costed:
    cost: float
    #: names of the (real or hypothetical) indexes the plan uses
    indexes: frozenset[str]


@dataclass(frozen=True)
class HypoIndex:
    oid: int
    name: str
    candidate: Candidate


def plan_indexes(plan: Plan) -> frozenset[str]:
    return frozenset(n.index_name for n in plan.walk() if n.index_name)


class HypoSession:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.runner = SqlRunner(conn, server_version_num=conn.info.server_version)
        self.explains = 0

    def __enter__(self) -> HypoSession:
        self.reset()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # if the session is broken, the hypothetical indexes die with it anyway
        with contextlib.suppress(psycopg.Error):
            self.reset()

    def reset(self) -> None:
        try:
            self.runner.fetch("hypo_reset")
        except psycopg.errors.UndefinedFunction:
            raise HypoUnavailable("hypopg is not installed in this database") from None

    def cost(self, text: str, params: Sequence[str] | None = None) -> Costed:
        """The planner's total cost of `text` (never run), and the indexes its plan uses."""
        self.explains += 1
        plan = explain(self.conn, text, analyze=False, params=params).plan
        return Costed(plan.total_cost, plan_indexes(plan))

    def create(self, candidate: Candidate) -> HypoIndex:
        ddl = candidate.ddl().as_string(self.conn)
        rows = self.runner.fetch("hypo_create", {"ddl": ddl})
        return HypoIndex(int(rows[0]["oid"]), str(rows[0]["name"]), candidate)

    def size(self, index: HypoIndex) -> int:
        return int(self.runner.fetch("hypo_size", {"oid": index.oid})[0]["bytes"])

    def drop(self, index: HypoIndex) -> None:
        self.runner.fetch("hypo_drop", {"oid": index.oid})


def try_cost(session: HypoSession, text: str, params: Sequence[str] | None = None) -> Costed | None:
    try:
        return session.cost(text, params)
    except ExplainFailed:
        return None

"""Costing candidate indexes with hypopg and the real planner.

Hypothetical indexes live in the backend's memory: only this session's planner sees them,
nothing is written to the catalog, and `HypoSession` calls hypopg_reset() when it closes, so
the session can go on to other work (the plan review) with a clean planner.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any

import psycopg

from opscope.db.advisor.candidates import Candidate
from opscope.db.catalog import Table
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
    #: every hypothetical index it stands for: one per leaf partition of a partitioned
    #: table (the planner ignores one on the parent), else itself
    members: tuple[tuple[int, str], ...] = ()


def plan_indexes(plan: Plan) -> frozenset[str]:
    return frozenset(n.index_name for n in plan.walk() if n.index_name)


class HypoSession:
    def __init__(
        self, conn: psycopg.Connection[Any], leaves: Mapping[str, Sequence[Table]] | None = None
    ) -> None:
        self.conn = conn
        self.runner = SqlRunner(conn, server_version_num=conn.info.server_version)
        self.explains = 0
        #: partitioned table (schema.name) -> its leaf partitions
        self.leaves = leaves or {}
        #: a leaf's hypothetical index name -> the name of the one that stands for the set
        self._alias: dict[str, str] = {}

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
        used = frozenset(self._alias.get(name, name) for name in plan_indexes(plan))
        return Costed(plan.total_cost, used)

    def create(self, candidate: Candidate) -> HypoIndex:
        targets = [
            replace(candidate, schema=leaf.schema, table=leaf.name)
            for leaf in self.leaves.get(candidate.relation, ())
        ] or [candidate]
        members: list[tuple[int, str]] = []
        try:
            for target in targets:
                ddl = target.ddl().as_string(self.conn)
                rows = self.runner.fetch("hypo_create", {"ddl": ddl})
                members.append((int(rows[0]["oid"]), str(rows[0]["name"])))
        except psycopg.Error:
            for oid, _ in members:
                self.runner.fetch("hypo_drop", {"oid": oid})
            raise
        oid, name = members[0]
        for _, other in members[1:]:
            self._alias[other] = name
        return HypoIndex(oid, name, candidate, tuple(members))

    def size(self, index: HypoIndex) -> int:
        return sum(
            int(self.runner.fetch("hypo_size", {"oid": oid})[0]["bytes"])
            for oid, _ in index.members or ((index.oid, index.name),)
        )

    def drop(self, index: HypoIndex) -> None:
        for oid, name in index.members or ((index.oid, index.name),):
            self.runner.fetch("hypo_drop", {"oid": oid})
            self._alias.pop(name, None)


def try_cost(session: HypoSession, text: str, params: Sequence[str] | None = None) -> Costed | None:
    try:
        return session.cost(text, params)
    except ExplainFailed:
        return None

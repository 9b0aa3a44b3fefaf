"""The advisor's choice and set costing: pure logic, tested on plain inputs."""

from __future__ import annotations

from collections.abc import Sequence

from opscope.db.advisor.advise import WorkloadStatement, verify_together
from opscope.db.advisor.candidates import Candidate, KeyPart
from opscope.db.advisor.hypo import Costed
from opscope.db.advisor.predicates import TableUse
from opscope.db.advisor.select import Option


def statement(key: int, table: str, calls: int = 10) -> WorkloadStatement:
    text = " ".join(["SELECT * FROM", table, "WHERE", f"c{key}", "= $1"])
    return WorkloadStatement(
        key=key,
        queryid=1000 + key,
        query=text,
        text=text,
        params=None,
        calls=calls,
        mean_ms=1.0,
        total_ms=float(calls),
        rows=calls,
        uses=(TableUse("public", table),),
        relations=(f"public.{table}",),
    )


def option(table: str, column: str, key: int) -> Option:
    cand = Candidate("public", table, (KeyPart(column),))
    return Option(cand, {key: 10.0}, 8192, 0.0)


def test_a_set_that_keeps_shrinking_is_costed_again_not_crashed() -> None:
    # each costing finds the last index of the set unused: five rounds would be needed,
    # and after the last allowed one the names must still match the options kept
    workload = [statement(k, "t") for k in range(5)]
    options = [option("t", f"c{k}", k) for k in range(5)]
    rounds: list[int] = []

    def cost(cands: Sequence[Candidate]) -> tuple[list[str], dict[int, Costed | None]]:
        rounds.append(len(cands))
        names = [f"hypo_{c.keys[0].expr}" for c in cands]
        used = names[:-1]
        return names, {
            k: Costed(10.0, frozenset(used) if f"hypo_c{k}" in used else frozenset())
            for k in range(5)
        }

    recs = verify_together(
        options,
        workload,
        {k: 100.0 for k in range(5)},
        {k: frozenset() for k in range(5)},
        {},
        cost,
    )
    assert rounds == [5, 4, 3, 2]
    assert [r.candidate.key_names for r in recs] == [("c0",)]
    [effect] = recs[0].effects
    assert (effect.cost_before, effect.cost_after) == (100.0, 10.0)


def test_an_empty_set_costs_nothing() -> None:
    def cost(cands: Sequence[Candidate]) -> tuple[list[str], dict[int, Costed | None]]:
        raise AssertionError("nothing to cost")

    assert verify_together([], [statement(0, "t")], {0: 1.0}, {0: frozenset()}, {}, cost) == []

"""The advisor's choice and set costing: pure logic, tested on plain inputs."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from opscope.db.advisor.advise import verify_together
from opscope.db.advisor.candidates import Candidate, KeyPart, unique_names
from opscope.db.advisor.hypo import Costed
from opscope.db.advisor.model import WorkloadStatement
from opscope.db.advisor.predicates import TableUse
from opscope.db.advisor.select import MAX_SCALE, MIN_SCALE, Option, window_scale, write_penalty
from opscope.db.catalog import Table


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


def test_index_names_carry_the_operator_class_and_avoid_taken_names() -> None:
    plain = Candidate("public", "users", (KeyPart("email"),))
    pattern = Candidate("public", "users", (KeyPart("email", opclass="text_pattern_ops"),))
    assert plain.index_name() == "users_email_idx"
    assert pattern.index_name() == "users_email_text_pattern_ops_idx"
    assert plain.index_name({"users_email_idx", "users_email_idx1"}) == "users_email_idx2"
    # the schema's relations, and each other: two candidates never share a name; the same
    # index asked for twice keeps its one name (its findings then share one fix)
    other = Candidate("audit", "users", (KeyPart("email"),))
    lowered = Candidate("public", "users", (KeyPart("lower(email)", is_expression=True),))
    column = Candidate("public", "users", (KeyPart("lower_email"),))
    assert unique_names(
        [plain, pattern, plain, other, lowered, column],
        {("public", "users_email_idx"), ("audit", "users")},
    ) == [
        "users_email_idx1",
        "users_email_text_pattern_ops_idx",
        "users_email_idx1",
        "users_email_idx",
        "users_lower_email_idx",
        "users_lower_email_idx1",
    ]
    assert plain.fix_sql("users_email_idx1").startswith(
        "CREATE INDEX CONCURRENTLY users_email_idx1 ON public.users"
    )


def test_long_index_names_fit_in_63_bytes() -> None:
    wide = Candidate("public", "t" * 40, (KeyPart("é" * 30), KeyPart("b" * 30)))
    taken = {wide.index_name()}
    for name in (wide.index_name(), wide.index_name(taken)):
        assert len(name.encode()) <= 63
        assert name.startswith("t" * 40)
    assert wide.index_name(taken).endswith("_idx1") and wide.index_name(taken) not in taken


def table(**counters: int) -> Table:
    fields: dict[str, Any] = {f.name: 0 for f in dataclasses.fields(Table)}
    fields.update(
        oid=1,
        schema="public",
        name="t",
        kind="r",
        reltuples=1000.0,
        size_estimated=False,
        last_vacuum=None,
        last_autovacuum=None,
        last_analyze=None,
        last_autoanalyze=None,
        reloptions=(),
    )
    fields.update(counters)
    return Table(**fields)


def test_writes_are_scaled_to_the_workload_window() -> None:
    cand = Candidate("public", "t", (KeyPart("a"),))
    loaded = table(n_tup_ins=1_000_000)
    # a day of table statistics, an hour of statements: a 24th of the writes count
    scale = window_scale(3600.0, 86400.0)
    assert scale == 1 / 24
    penalty = write_penalty(
        cand, loaded, updates_touching=0, existing_indexes=1, cost_per_row=2.0, scale=scale
    )
    assert penalty == 1_000_000 / 24 * 2.0
    # unknown windows compare as they are; absurd ratios are clamped
    assert window_scale(None, 86400.0) == 1.0 and window_scale(3600.0, None) == 1.0
    assert window_scale(1.0, 1e9) == MIN_SCALE and window_scale(1e9, 1.0) == MAX_SCALE


def test_updates_that_lose_hot_are_not_counted_twice() -> None:
    cand = Candidate("public", "t", (KeyPart("a"),))
    # 100 updates, 40 of them HOT; the workload's UPDATE sets `a` on 100 rows
    t = table(n_tup_upd=100, n_tup_hot_upd=40)
    penalty = write_penalty(cand, t, updates_touching=100, existing_indexes=2, cost_per_row=1.0)
    # 60 non-HOT updates add one entry to the new index; the 40 HOT ones stop being HOT and
    # add one to each of the three indexes
    assert penalty == 60 + 40 * 3

"""Predicate extraction and plan parsing: pure logic, tested on plain inputs."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from opscope.db.advisor.candidates import safe_expression
from opscope.db.advisor.predicates import Key, extract
from opscope.db.plans.diagnose import expression_columns
from opscope.db.plans.explain import inspect_statement
from opscope.db.plans.model import PlanFormatError, parse_plan
from opscope.db.plans.samples import Sample, bind_params, constant_value


def col(name: str) -> Key:
    return Key(name, (name,))


def test_equality_range_join_and_order_per_table() -> None:
    uses = {
        u.table: u
        for u in extract(
            "SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id "
            "WHERE o.status IN ($1, $2) AND o.created_at >= $3 AND c.deleted_at IS NULL "
            "ORDER BY o.created_at DESC"
        )
    }
    orders, customers = uses["orders"], uses["customers"]
    assert orders.equality == [col("status")]
    assert orders.ranges == [col("created_at")]
    assert orders.joins == [col("customer_id")]
    assert orders.order_by == [(col("created_at"), True)]
    assert orders.referenced == {"id", "status", "created_at", "customer_id"}
    assert customers.equality == [col("deleted_at")] and customers.joins == [col("id")]


def test_expressions_keep_their_constants_and_drop_aliases() -> None:
    [use] = extract(
        "SELECT * FROM events e WHERE lower(e.email) = $1 AND e.payload ->> 'k' = 'v' "
        "AND date_trunc('day', e.at) = $2 AND e.name LIKE 'ab%' AND e.code LIKE '%x'"
    )
    assert [k.expr for k in use.equality] == [
        "lower(email)",
        "payload ->> 'k'",
        "date_trunc('day', at)",
    ]
    assert all(k.is_expression for k in use.equality)
    # only a constant prefix can use a btree
    assert use.like_prefix == [col("name")] and use.referenced is None


def test_parameters_inside_an_expression_are_not_a_key() -> None:
    [use] = extract("SELECT id FROM t WHERE date_trunc($1, at) = $2 AND a BETWEEN $3 AND $4")
    assert use.equality == [] and use.ranges == [col("a")]


def test_update_records_the_columns_it_sets_and_ctes_are_not_tables() -> None:
    uses = extract(
        "WITH recent AS (SELECT * FROM orders WHERE created_at > $1) "
        "UPDATE accounts SET balance = balance + 1 WHERE id = $2 "
        "AND id IN (SELECT account_id FROM recent)"
    )
    by_table = {u.table: u for u in uses}
    assert set(by_table) == {"orders", "accounts"}
    assert by_table["accounts"].updated == {"balance"}
    assert by_table["accounts"].equality == [col("id")]


def test_unqualified_columns_resolve_with_the_catalog() -> None:
    def columns_of(schema: str | None, table: str) -> frozenset[str]:
        return frozenset({"a": {"x", "id"}, "b": {"y", "a_id"}}[table])

    uses = {
        u.table: u for u in extract("SELECT * FROM a JOIN b ON a_id = id WHERE y = 1", columns_of)
    }
    assert uses["b"].equality == [col("y")]
    assert uses["a"].joins == [col("id")] and uses["b"].joins == [col("a_id")]


def test_read_only_shapes() -> None:
    assert inspect_statement("SELECT count(*) FROM t WHERE a = $3").read_only
    assert inspect_statement("SELECT count(*) FROM t WHERE a = $3").param_count == 3
    assert not inspect_statement("SELECT * INTO copy FROM t").read_only
    assert not inspect_statement("SELECT * FROM t FOR SHARE").read_only


def test_plan_json_parses_into_a_tree() -> None:
    doc = json.dumps(
        [
            {
                "Plan": {
                    "Node Type": "Sort",
                    "Startup Cost": 1.5,
                    "Total Cost": 2.5,
                    "Plan Rows": 10,
                    "Plan Width": 8,
                    "Sort Key": ["a"],
                    "Temp Written Blocks": 12,
                    "Plans": [
                        {
                            "Node Type": "Seq Scan",
                            "Parent Relationship": "Outer",
                            "Relation Name": "t",
                            "Schema": "public",
                            "Startup Cost": 0,
                            "Total Cost": 1,
                            "Plan Rows": 10,
                            "Plan Width": 8,
                            "Filter": "(t.a > 1)",
                            "Temp Written Blocks": 2,
                        }
                    ],
                },
                "Planning Time": 0.1,
            }
        ]
    )
    plan = parse_plan(doc)
    assert [n.node_type for n in plan.walk()] == ["Sort", "Seq Scan"]
    assert plan.root.own_temp_written_blocks == 10
    assert plan.root.children[0].relation == "public.t"
    assert not plan.analyzed and plan.total_cost == 2.5
    for bad in ("[]", "{}", "not json", '[{"Plan": {"Plans": []}}]'):
        try:
            parse_plan(bad)
        except PlanFormatError:
            continue
        raise AssertionError(f"{bad!r} parsed")


def test_condition_columns_and_qualstats_values() -> None:
    assert expression_columns("((o.customer_id = 42) AND (o.status = 'x'::text))") == (
        "customer_id",
        "status",
    )
    assert expression_columns("(p.id = k.parent_id)", "p") == ("id",)
    assert expression_columns("(hashed SubPlan 1)") == ()
    assert constant_value("'it''s'::text") == "it's"
    assert constant_value("5::smallint") == "5"
    assert bind_params(
        "SELECT * FROM t WHERE a = $1 AND b = $2", {26: "7::integer", 37: "'x'::text"}
    ) == (
        "7",
        "x",
    )
    # a missing value leaves the sample incomplete: it is then planned generically
    partial = bind_params("SELECT * FROM t WHERE a = $1 AND b = $2", {26: "7::integer"})
    assert not Sample("SELECT * FROM t WHERE a = $1 AND b = $2", partial).complete


def test_index_expressions_must_parse_as_one_expression() -> None:
    assert safe_expression("lower(email)")
    assert not safe_expression("1) ; DROP TABLE t; SELECT (1")
    assert safe_expression("(SELECT 1 FROM t WHERE true)") is not False or True


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_extraction_never_raises_on_arbitrary_text(text: str) -> None:
    extract(text)
    expression_columns(text)
    safe_expression(text)


SQLISH = st.lists(
    st.sampled_from(
        [
            "SELECT",
            "*",
            "FROM",
            "t",
            "u",
            "WHERE",
            "a",
            "=",
            "$1",
            "AND",
            "OR",
            "(",
            ")",
            "IN",
            "LIKE",
            "'x%'",
            "ORDER BY",
            "GROUP BY",
            "JOIN",
            "ON",
            "t.a",
            "u.b",
            "lower(",
            "IS NULL",
            ",",
            "BETWEEN",
            "1",
            "WITH",
            "c AS",
            "UPDATE",
            "SET",
            "DELETE",
            "NOT",
            "EXISTS",
            "->>",
            "::date",
            ";",
        ]
    ),
    max_size=30,
).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(SQLISH)
def test_extraction_never_raises_on_sql_like_text(text: str) -> None:
    for use in extract(text):
        assert use.table


def test_join_using_and_natural_join_record_the_keys_on_both_sides() -> None:
    def columns_of(schema: str | None, table: str) -> frozenset[str]:
        return frozenset({"a": {"id", "x", "k"}, "b": {"id", "y"}, "c": {"k", "z"}}[table])

    # one table a side: no catalog needed
    uses = {u.table: u for u in extract("SELECT * FROM a JOIN b USING (id)")}
    assert uses["a"].joins == [col("id")] and uses["b"].joins == [col("id")]
    # the left side is itself a join: the catalog says which of its tables has the column
    uses = {
        u.table: u
        for u in extract("SELECT * FROM a JOIN b ON a.id = b.id JOIN c USING (k)", columns_of)
    }
    assert uses["c"].joins == [col("k")] and set(uses["a"].joins) == {col("id"), col("k")}
    assert uses["b"].joins == [col("id")]
    uses = {u.table: u for u in extract("SELECT * FROM a NATURAL JOIN c", columns_of)}
    assert uses["a"].joins == [col("k")] and uses["c"].joins == [col("k")]
    # without the catalog a natural join's columns are unknown: nothing is guessed
    assert all(not u.joins for u in extract("SELECT * FROM a NATURAL JOIN c"))


def test_equality_with_any_of_an_array_is_equality() -> None:
    [use] = extract("SELECT * FROM t WHERE id = ANY($1) AND code = ANY(ARRAY['a', 'b'])")
    assert use.equality == [col("id"), col("code")]
    [use] = extract("SELECT * FROM t WHERE id > ANY($1)")
    assert use.equality == []


def test_a_correlated_column_the_inner_table_lacks_belongs_to_the_outer_one() -> None:
    def columns_of(schema: str | None, table: str) -> frozenset[str]:
        return frozenset({"customers": {"id", "region"}, "orders": {"id", "customer_id"}}[table])

    uses = {
        u.table: u
        for u in extract(
            "SELECT id FROM customers WHERE EXISTS "
            "(SELECT 1 FROM orders WHERE customer_id = customers.id AND region = $1)",
            columns_of,
        )
    }
    # region is not a column of orders: it is the outer customers.region
    assert uses["orders"].equality == [] and uses["orders"].joins == [col("customer_id")]
    assert uses["customers"].equality == [col("region")]
    assert uses["customers"].joins == [col("id")]

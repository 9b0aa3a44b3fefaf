"""Pure helpers: size estimates, statement parsing, identifier quoting, redaction."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from opscope.db.bloat import ColumnWidth, btree_expected_bytes, heap_expected_bytes
from opscope.db.catalog import parse_bool
from opscope.db.logs.findings import error_advice
from opscope.db.plans.explain import plannable
from opscope.db.relations import mentions, referenced_tables
from opscope.db.statements import is_maintenance
from opscope.redact import redact
from opscope.sqltext import quote_ident


def test_heap_estimate_matches_a_known_layout() -> None:
    # two int4 columns: 24-byte header + 8 bytes data + 4-byte line pointer = 36 bytes;
    # (8192 - 24) // 36 = 226 rows per page
    pages = heap_expected_bytes(226 * 10, [ColumnWidth(4, 0), ColumnWidth(4, 0)]) // 8192
    assert pages == 10


def test_btree_estimate_counts_leaves_inner_pages_and_meta() -> None:
    # int4 key: 8 + 4 -> 16 aligned + 4 = 20 bytes; (8152 * 0.9) // 20 = 366 per page
    size = btree_expected_bytes(366 * 100, [ColumnWidth(4, 0)])
    assert size == (100 + 1 + 1) * 8192


@given(st.floats(min_value=0, max_value=1e9), st.integers(min_value=1, max_value=2000))
def test_estimates_grow_with_rows(rows: float, width: int) -> None:
    cols = [ColumnWidth(width, 0.1)]
    assert heap_expected_bytes(rows * 2, cols) >= heap_expected_bytes(rows, cols)
    assert btree_expected_bytes(rows * 2, cols) >= btree_expected_bytes(rows, cols)


def test_referenced_tables_ignores_ctes_and_literals() -> None:
    q = (
        "WITH recent AS (SELECT * FROM orders WHERE at > $1) "
        "SELECT * FROM recent JOIN shop.customers c ON c.id = recent.cid "
        "WHERE note = 'FROM orders_archive'"
    )
    assert referenced_tables(q) == {(None, "orders"), ("shop", "customers")}
    assert mentions(q, "public", "orders")
    assert not mentions(q, "public", "orders_archive")
    assert mentions(q, "shop", "customers") and not mentions(q, "public", "customers")


@given(st.text(max_size=200))
def test_referenced_tables_never_raises(text: str) -> None:
    assert isinstance(referenced_tables(text), frozenset)


def test_quote_ident() -> None:
    assert quote_ident("orders") == "orders"
    assert quote_ident("Orders") == '"Orders"'
    assert quote_ident("user") == '"user"'
    assert quote_ident('a"b') == '"a""b"'
    assert quote_ident("1abc") == '"1abc"'
    # type and function-name keywords too, as PostgreSQL's quote_ident does
    for word in ("left", "right", "join", "full", "inner", "verbose", "freeze", "is", "like"):
        assert quote_ident(word) == f'"{word}"', word
    assert quote_ident("collation") == '"collation"'
    assert quote_ident("values") == '"values"'
    # unreserved keywords stay bare
    assert quote_ident("name") == "name"
    assert quote_ident("data") == "data"


def test_redact_passwords() -> None:
    assert redact("postgresql://bob:s3cret@db/x") == "postgresql://bob:********@db/x"
    assert redact("host=db password=s3cret user=bob") == "host=db password=******** user=bob"
    assert redact("password='a b' host=x") == "password=******** host=x"


def test_maintenance_statements() -> None:
    assert is_maintenance("CREATE INDEX x ON t (a)")
    assert is_maintenance("/* tool */ vacuum t")
    assert not is_maintenance("SELECT * FROM created")
    assert not is_maintenance("WITH x AS (SELECT 1) SELECT * FROM x")


def test_error_advice_by_sqlstate_then_class() -> None:
    assert "consistent order" in error_advice("40P01")
    assert "pooler" in error_advice("53300")
    assert "out of a resource" in error_advice("53200")
    assert "application code" in error_advice("22P02")
    assert "application code" in error_advice(None)


def test_typed_literal_parameters_become_casts() -> None:
    assert plannable("SELECT now() - interval $2 FROM t WHERE d > date $1") == (
        "SELECT now() - $2::interval FROM t WHERE d > $1::date"
    )
    assert plannable("WHERE at < timestamp with time zone $3") == (
        "WHERE at < $3::timestamp with time zone"
    )
    assert plannable("SELECT created_date, $1 FROM t") == "SELECT created_date, $1 FROM t"


def test_parse_bool_reads_reloptions_as_postgresql_does() -> None:
    for text in ("off", "OFF", "no", "0", "FALSE", "f", "of", " false "):
        assert parse_bool(text) is False, text
    for text in ("on", "True", "yes", "1", "t", "y"):
        assert parse_bool(text) is True, text
    for text in ("o", "", "maybe", "2", "offf"):
        assert parse_bool(text) is None, text

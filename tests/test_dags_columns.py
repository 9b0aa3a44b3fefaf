"""A run's tries as columns (the binary arrays tries.columns.sql sends): what the reader and
the fast path decode must be what the server encodes, and the rows made of them the rows
they were made of."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import SandboxDb
from opscope.dags.columns import (
    INT4,
    TEXT,
    TIMESTAMPTZ,
    ColumnsError,
    Part,
    TryColumns,
    decode_texts,
    decode_values,
    encode,
    seconds,
)

texts = st.one_of(st.none(), st.text(max_size=12))
#: times as a metadata database holds them: microseconds, in PostgreSQL's range, or infinity
times = st.one_of(
    st.none(),
    st.just(math.inf),
    # within 1970 +- 63 years: a microsecond there is a double's round trip through 1e6
    st.integers(-(2 * 10**15), 2 * 10**15).map(lambda us: us / 1e6),
)


@st.composite
def rows(draw: st.DrawFn) -> tuple[Any, ...]:
    return (
        0,
        draw(st.text(min_size=1, max_size=10)),
        draw(st.integers(-1, 2**31 - 1)),
        draw(st.integers(0, 9)),
        draw(st.one_of(st.none(), st.sampled_from(["success", "failed", "up_for_retry"]))),
        draw(texts),
        draw(st.integers(0, 5)),
        draw(times),
        draw(times),
        draw(times),
        draw(times),
        draw(st.booleans()),
    )


@given(st.lists(rows(), max_size=30))
def test_rows_made_columns_come_back_as_they_were(made: list[tuple[Any, ...]]) -> None:
    """Current tries first, then earlier ones, each in the order given."""
    columns = TryColumns.from_rows(made)
    assert len(columns) == len(made)
    expected = [r for r in made if not r[11]] + [r for r in made if r[11]]
    assert columns.rows() == expected


@given(st.lists(texts, min_size=1, max_size=40))
def test_a_text_array_decodes_to_its_elements(values: list[str | None]) -> None:
    assert decode_texts(encode(values, TEXT)) == tuple(values)


@given(
    st.one_of(
        st.tuples(st.just(INT4), st.lists(st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1)))),
        st.tuples(st.just(TIMESTAMPTZ), st.lists(times)),
    ).filter(lambda t: bool(t[1]))
)
def test_a_number_array_decodes_to_its_elements(case: tuple[int, list[Any]]) -> None:
    oid, values = case
    assert decode_values(encode(values, oid)) == values


def test_a_null_number_keeps_a_part_off_the_fast_path() -> None:
    row = (0, "t", -1, 1, "success", None, 1, None, None, 1.0, 2.0, False)
    assert TryColumns.from_rows([row]).regular
    assert not TryColumns.from_rows([(*row[:3], None, *row[4:])]).regular
    # a NULL pool or state is text: the fast path reads it
    assert TryColumns.from_rows([(*row[:4], None, *row[5:])]).regular


def test_what_is_not_a_column_is_refused_in_a_line() -> None:
    with pytest.raises(ColumnsError, match="2 dimensions"):
        decode_texts(b"\x00\x00\x00\x02" + bytes(28))
    with pytest.raises(ColumnsError, match="10 were expected"):
        Part((encode(["a"], TEXT),), False)
    with pytest.raises(ColumnsError, match="where numbers were expected"):
        decode_values(encode(["a"], TEXT))


def test_the_server_encodes_arrays_as_the_columns_read_them(db: SandboxDb) -> None:
    """array_send of a real server, byte for byte what `encode` writes (so what the
    decoders read), NULLs included; and its times read as seconds are date_part's, to the
    bit, -infinity (what the query sends for no time) as none."""
    with db.connect() as conn:
        row = conn.execute(
            "SELECT array_send(ARRAY['t1', NULL, 'ü']::text[]),"
            " array_send(ARRAY[-1, NULL, 7]::int4[]),"
            " array_send(array_agg(x)) FROM (VALUES (1::int4), (2)) v(x)"
        ).fetchone()
        assert row is not None
        assert row[0] == encode(["t1", None, "ü"], TEXT)
        assert row[1] == encode([-1, None, 7], INT4)
        assert row[2] == encode([1, 2], INT4)
        stamps = [
            "2026-06-01 12:00:00.123457+00",
            "1999-12-31 23:59:59.999999+00",
            "1969-07-20 20:17:40.000001+00",
            "2254-01-01 00:00:00.000001+00",
            "infinity",
            "-infinity",
        ]
        got = conn.execute(
            "SELECT array_send(a), (SELECT array_agg(date_part('epoch', t)) FROM unnest(a) t)"
            " FROM (SELECT %s::timestamptz[] AS a) s",
            (stamps,),
        ).fetchone()
    assert got is not None
    raw, expected = got
    assert decode_values(raw) == [*expected[:-1], None]
    # as `encode` writes them (from seconds: exact while a double holds the microsecond)
    assert raw[:20] == encode([None] * len(stamps), TIMESTAMPTZ)[:20]
    assert raw[20:56] == encode(expected[:3], TIMESTAMPTZ)[20:56]
    import numpy as np

    packed = np.frombuffer(raw, dtype=[("size", ">i4"), ("value", ">i8")], offset=20)["value"]
    assert seconds(packed).tolist()[:-1] == expected[:-1]

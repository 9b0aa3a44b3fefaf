"""The partitioning plan's pure parts: bounds PostgreSQL prints, read back; range widths from
row rate and query ranges; the boundaries of days, weeks and months."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from opscope.db.partitions.model import DAY, MONTH, WEEK, literal, parse_bound, parse_moment
from opscope.db.partitions.proposal import Limits, choose_interval

LIMITS = Limits(
    min_partition_rows=100_000, max_partitions=1000, max_partition_bytes=1 << 40, premake=4
)


def test_bounds_as_postgresql_prints_them() -> None:
    b = parse_bound("FOR VALUES FROM ('2026-01-01 00:00:00+00') TO ('2026-01-02 00:00:00+00')")
    assert b is not None and b.lower == datetime(2026, 1, 1, tzinfo=UTC)
    assert b.upper == datetime(2026, 1, 2, tzinfo=UTC) and not b.open_ended
    dated = parse_bound("FOR VALUES FROM ('2026-01-01') TO ('2026-02-01')")
    assert dated is not None and dated.upper == datetime(2026, 2, 1, tzinfo=UTC)
    zoned = parse_bound(
        "FOR VALUES FROM ('2026-01-01 00:00:00+05:30') TO ('2026-01-02 00:00:00+05:30')"
    )
    assert zoned is not None and zoned.lower == datetime(2025, 12, 31, 18, 30, tzinfo=UTC)
    opened = parse_bound("FOR VALUES FROM ('2026-01-01 00:00:00') TO (MAXVALUE)")
    assert opened is not None and opened.open_ended and opened.upper is None
    default = parse_bound("DEFAULT")
    assert default is not None and default.default
    listed = parse_bound("FOR VALUES IN ('a', 'it''s', 3)")
    assert listed is not None and listed.values == ("a", "it's", "3")
    hashed = parse_bound("FOR VALUES WITH (modulus 8, remainder 3)")
    assert hashed is not None and hashed.modulus == 8
    two = parse_bound("FOR VALUES FROM (1, 'a') TO (2, 'b')")
    assert two is not None and two.lower is None and two.upper is None


def test_values_that_are_not_moments() -> None:
    assert parse_moment("infinity") is None
    assert parse_moment("2026-01-01 BC") is None
    assert parse_moment(None) is None
    assert parse_moment('"2026-03-04 05:06:07.25+00"') == datetime(
        2026, 3, 4, 5, 6, 7, 250000, tzinfo=UTC
    )


@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1)))
def test_each_moment_falls_in_the_partition_its_floor_starts(moment: datetime) -> None:
    moment = moment.replace(tzinfo=UTC)
    for interval in (DAY, WEEK, MONTH):
        start = interval.floor(moment)
        end = interval.next(start)
        assert start <= moment < end
        assert interval.floor(end) == end  # boundaries are fixed points
        if interval is WEEK:
            assert start.weekday() == 0
        if interval is MONTH:
            assert start.day == 1 and end.day == 1


@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1)))
def test_literals_read_back_as_the_same_moment(moment: datetime) -> None:
    moment = moment.replace(microsecond=0, tzinfo=UTC)
    for type_name in ("timestamp with time zone", "timestamp without time zone"):
        assert parse_moment(literal(moment, type_name).strip("'")) == moment
    assert parse_moment(literal(moment, "date").strip("'")) == moment.replace(
        hour=0, minute=0, second=0
    )


def test_range_width_follows_the_row_rate() -> None:
    # 33,000 rows a day: a day holds too few rows, a week enough
    assert choose_interval(33_000, 90, None, LIMITS)[0] is WEEK
    assert choose_interval(500_000, 90, None, LIMITS)[0] is DAY
    assert choose_interval(1_000, 90, None, LIMITS)[0] is MONTH


def test_range_width_follows_the_ranges_queries_ask_for() -> None:
    # enough rows for daily partitions, but the queries read a month at a time
    assert choose_interval(500_000, 400, 31.0, LIMITS)[0] is MONTH
    assert choose_interval(500_000, 400, 8.0, LIMITS)[0] is WEEK
    assert choose_interval(500_000, 400, 0.5, LIMITS)[0] is DAY


def test_range_width_never_makes_more_partitions_than_allowed() -> None:
    few = Limits(min_partition_rows=1, max_partitions=30, max_partition_bytes=1 << 40, premake=4)
    # ten years of data: days and weeks would need too many partitions
    interval, why = choose_interval(10_000_000, 3650, 0.5, few)
    assert interval is MONTH
    assert "rows a day" in why
    assert (timedelta(days=3650) / timedelta(days=interval.days)) > 30  # months too, but last

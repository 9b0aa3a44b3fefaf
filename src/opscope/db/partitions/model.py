"""What partitioning decisions are made of: key columns and their values, intervals, and the
bounds PostgreSQL prints for partitions, parsed back."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

#: column types a range partition by time can key on
TIME_TYPES = ("timestamp with time zone", "timestamp without time zone", "date")


def is_time_type(type_name: str) -> bool:
    return type_name.split("(")[0].strip() in TIME_TYPES or type_name.startswith("timestamp")


@dataclass(frozen=True)
class Interval:
    """A range partition's width."""

    name: str
    days: float
    #: how PostgreSQL and pg_partman spell it
    sql: str

    def floor(self, moment: datetime) -> datetime:
        """The start of the partition holding `moment` (UTC midnight, Monday, 1st)."""
        day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        if self.name == "week":
            return day - timedelta(days=day.weekday())
        if self.name == "month":
            return day.replace(day=1)
        return day

    def next(self, start: datetime) -> datetime:
        if self.name == "month":
            return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
        return start + timedelta(days=self.days)

    def suffix(self, start: datetime) -> str:
        return start.strftime("%Y%m" if self.name == "month" else "%Y%m%d")


DAY = Interval("day", 1.0, "1 day")
WEEK = Interval("week", 7.0, "1 week")
MONTH = Interval("month", 30.4, "1 month")
INTERVALS = (DAY, WEEK, MONTH)


@dataclass(frozen=True)
class ColumnFacts:
    """One column of a table, with what the planner's statistics say of its values."""

    name: str
    type: str
    not_null: bool
    #: pg_stats n_distinct: a count, or minus a share of the rows; None without statistics
    n_distinct: float | None
    low: str | None
    high: str | None
    common_values: tuple[str, ...] = ()
    common_shares: tuple[float, ...] = ()

    @property
    def is_time(self) -> bool:
        return is_time_type(self.type)

    def distinct_values(self, rows: float) -> float | None:
        if self.n_distinct is None:
            return None
        return self.n_distinct if self.n_distinct > 0 else -self.n_distinct * rows


def parse_moment(text: str | None) -> datetime | None:
    """A timestamp or date as PostgreSQL prints it in ISO style, as an aware UTC datetime
    (a value without a zone is taken as UTC); None for what is not one (infinity, BC)."""
    if text is None:
        return None
    value = text.strip().strip('"')
    if not re.match(r"^\d{4}-\d\d-\d\d", value) or value.endswith(" BC"):
        return None
    # PostgreSQL prints a zone as +00 or +05:30; Python wants +00:00
    value = re.sub(r"([+-]\d\d)$", r"\1:00", value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(value[:10]), datetime.min.time())
        except ValueError:
            return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def literal(moment: datetime, type_name: str) -> str:
    """`moment` as a SQL literal of the key's type."""
    if type_name.startswith("date"):
        return f"'{moment:%Y-%m-%d}'"
    if "without time zone" in type_name:
        return f"'{moment:%Y-%m-%d %H:%M:%S}'"
    return f"'{moment:%Y-%m-%d %H:%M:%S}+00'"


@dataclass(frozen=True)
class Bound:
    """A partition's bound, from pg_get_expr(relpartbound)."""

    default: bool = False
    #: range partitions of a single time column: [lower, upper); None for MINVALUE/MAXVALUE
    lower: datetime | None = None
    upper: datetime | None = None
    #: MAXVALUE as the upper bound: the partition takes every later row
    open_ended: bool = False
    #: list partitions: the values, as printed
    values: tuple[str, ...] = ()
    #: hash partitions
    modulus: int | None = None


_RANGE = re.compile(r"^FOR VALUES FROM \((?P<low>.*)\) TO \((?P<high>.*)\)$", re.DOTALL)
_LIST = re.compile(r"^FOR VALUES IN \((?P<values>.*)\)$", re.DOTALL)
_HASH = re.compile(r"^FOR VALUES WITH \(modulus (?P<modulus>\d+), remainder \d+\)$")
_LITERAL = re.compile(r"\s*(?:'((?:[^']|'')*)'(?:::[\w ]+)?|([^,']+))\s*(?:,|$)")


def _values(text: str) -> tuple[str, ...]:
    out: list[str] = []
    for m in _LITERAL.finditer(text):
        quoted, bare = m.group(1), m.group(2)
        if quoted is not None:
            out.append(quoted.replace("''", "'"))
        elif bare is not None and bare.strip():
            out.append(bare.strip())
    return tuple(out)


def parse_bound(text: str | None) -> Bound | None:
    if text is None:
        return None
    text = text.strip()
    if text == "DEFAULT":
        return Bound(default=True)
    m = _RANGE.match(text)
    if m:
        low, high = _values(m.group("low")), _values(m.group("high"))
        if len(low) != 1 or len(high) != 1:
            return Bound()  # a multi-column range: not read further
        return Bound(
            lower=parse_moment(low[0]),
            upper=parse_moment(high[0]),
            open_ended=high[0].upper() == "MAXVALUE",
        )
    m = _LIST.match(text)
    if m:
        return Bound(values=_values(m.group("values")))
    m = _HASH.match(text)
    if m:
        return Bound(modulus=int(m.group("modulus")))
    return Bound()

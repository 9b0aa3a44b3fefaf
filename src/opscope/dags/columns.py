"""The tries of one run as columns, the way the metadata reader receives them: each column
of a run's current tries, and of its earlier ones, is one PostgreSQL array in its binary
form (`array_send`), so that a run of a hundred tries is one row of the answer rather than a
hundred. The aggregation's fast path reads the numbers of a batch of runs in one numpy call
per column, from the arrays' bytes end to end; text (task ids, pools, states) is decoded
only where it is looked at, and the same list of task ids, which most runs of a DAG share,
is mapped to the plan once.

The binary form of a one-dimensional array: five big-endian int32s (dimensions, whether any
element is NULL, the element type, the length, the lower bound), then each element as its
int32 size (-1: NULL) and its bytes. With no NULL and a fixed-size element, the elements
are a numpy structured array of (size, value). Times come as timestamptz (microseconds
since 2000, an int64), a NULL one as -infinity, so that a time array holds no NULL: the
server then does no arithmetic on them (date_part for four million times was a fifth of
its work), and `seconds` makes of them the seconds since 1970 date_part would give, to
the bit. A stored -infinity, which Airflow never writes, reads as no time too."""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

#: the header of a one-dimensional array's binary form
HEADER = 20
_HEAD = struct.Struct(">iiIii")
_SIZE = struct.Struct(">i")

#: PostgreSQL's type oids of the elements, written by `encode` as the server does
TEXT, INT4, TIMESTAMPTZ, TIMESTAMP = 25, 23, 1184, 1114

_FORMATS = {INT4: ">i4", TIMESTAMPTZ: ">i8", TIMESTAMP: ">i8"}
_PACKED = {
    INT4: struct.Struct(">i"),
    TIMESTAMPTZ: struct.Struct(">q"),
    TIMESTAMP: struct.Struct(">q"),
}
#: time types (a timestamp without time zone is read as UTC, as date_part reads it)
_TIMES = (TIMESTAMPTZ, TIMESTAMP)

#: 1970-01-01 in PostgreSQL's microseconds since 2000-01-01, negated: date_part('epoch', t)
#: is (t + EPOCH_US) / 1000000.0 in doubles
EPOCH_US = 946_684_800_000_000
#: -infinity (what the query sends for a NULL time) and infinity
NOBEGIN, NOEND = -(2**63), 2**63 - 1


@cache
def element(oid: int) -> np.dtype[Any]:
    """The elements of a fixed-size array without NULL, as numpy reads them: (size, value).
    numpy is imported here, not with the module: the dags modules load at every start-up."""
    import numpy as np

    return np.dtype([("size", ">i4"), ("value", _FORMATS[oid])])


#: the columns of one part, in the order the query sends them (tries.columns.sql)
NAMES = (
    "task_id",
    "map_index",
    "try_number",
    "state",
    "pool",
    "pool_slots",
    "scheduled",
    "queued",
    "start",
    "end",
)
TYPES = (TEXT, INT4, INT4, TEXT, TEXT, INT4, TIMESTAMPTZ, TIMESTAMPTZ, TIMESTAMPTZ, TIMESTAMPTZ)
_AT = {name: k for k, name in enumerate(NAMES)}


class ColumnsError(ValueError):
    """An array the reader cannot read as a column (not one-dimensional, or not the type
    asked for): a server that answered something else than the query asks."""


def _head(raw: bytes) -> tuple[int, bool, int]:
    """(length, whether an element is NULL, element type) of a one-dimensional array."""
    if len(raw) < HEADER:
        raise ColumnsError("an empty array where a column was expected")
    ndim, nulls, oid, count, _ = _HEAD.unpack_from(raw)
    if ndim != 1:
        raise ColumnsError(f"an array of {ndim} dimensions where a column was expected")
    return count, bool(nulls), oid


def _elements(raw: bytes, count: int) -> Iterator[tuple[int, int]]:
    """Where each element of an array's binary form starts, and its size (-1: NULL)."""
    at = HEADER
    for _ in range(count):
        (size,) = _SIZE.unpack_from(raw, at)
        at += 4
        yield at, size
        at += max(size, 0)


@lru_cache(maxsize=1024)
def decode_texts(raw: bytes) -> tuple[str | None, ...]:
    """The elements of a text array's binary form. The lists of task ids and of pools
    recur from run to run: each is decoded once."""
    count, _, _ = _head(raw)
    return tuple(
        None if size < 0 else raw[at : at + size].decode("utf-8")
        for at, size in _elements(raw, count)
    )


def decode_values(raw: bytes) -> list[Any]:
    """The elements of a fixed-size array's binary form, NULL as None; times as seconds
    since 1970 (`seconds`), -infinity as None."""
    import numpy as np

    count, nulls, oid = _head(raw)
    if oid not in _FORMATS:
        raise ColumnsError(f"an array of type {oid} where numbers were expected")
    if not nulls:
        values = np.frombuffer(raw, element(oid), count, HEADER)["value"]
        if oid in _TIMES:
            return [None if x != x else x for x in seconds(values).tolist()]
        out: list[Any] = values.tolist()
        return out
    unpack = _PACKED[oid].unpack_from
    out = [None if size < 0 else unpack(raw, at)[0] for at, size in _elements(raw, count)]
    if oid in _TIMES:
        return [None if x is None or x == NOBEGIN else _second(x) for x in out]
    return out


def _second(us: int) -> float:
    return float("inf") if us == NOEND else (us + EPOCH_US) / 1000000.0


def seconds(values: Any) -> Any:
    """Timestamptz values (int64 microseconds since 2000) as date_part('epoch') gives them,
    as doubles: (t + EPOCH_US) / 1e6, an int64 sum made a double; -infinity NaN (none),
    infinity inf."""
    import numpy as np

    low, high = values == NOBEGIN, values == NOEND
    us = np.where(low | high, 0, values).astype(np.int64)
    out = (us + EPOCH_US).astype(np.float64) / 1000000.0
    out[low] = np.nan
    out[high] = np.inf
    return out


def to_microseconds(value: float | None) -> int:
    """A time in seconds since 1970 as the query sends it (None: -infinity)."""
    if value is None or value == float("-inf"):
        return NOBEGIN
    if value == float("inf"):
        return NOEND
    return round(value * 1_000_000) - EPOCH_US


def encode(values: Sequence[Any], oid: int) -> bytes:
    """The binary form the server sends for an array of `values` (None: NULL; for times,
    seconds since 1970, None as -infinity, as the query sends them)."""
    if oid in _TIMES:
        values = [to_microseconds(v) for v in values]
    nulls = any(v is None for v in values)
    parts = [_HEAD.pack(1, int(nulls), oid, len(values), 1)]
    packed = _PACKED.get(oid)
    for v in values:
        if v is None:
            parts.append(_SIZE.pack(-1))
        elif oid == TEXT:
            data = str(v).encode("utf-8")
            parts.append(_SIZE.pack(len(data)) + data)
        else:
            assert packed is not None
            data = packed.pack(v)
            parts.append(_SIZE.pack(len(data)) + data)
    return b"".join(parts)


class Part:
    """The current tries of a run (`earlier` False), or its earlier ones: one array's
    binary form a column (NAMES), all of one length."""

    __slots__ = ("arrays", "count", "earlier")

    def __init__(self, arrays: tuple[bytes, ...], earlier: bool) -> None:
        if len(arrays) != len(NAMES):
            raise ColumnsError(f"{len(arrays)} columns where {len(NAMES)} were expected")
        self.arrays = arrays
        self.earlier = earlier
        self.count = _head(arrays[0])[0]

    def __len__(self) -> int:
        return self.count

    @property
    def regular(self) -> bool:
        """Whether the fast path can read it: no NULL map index or try number (the query
        sends every other number, a NULL time as -infinity). The flags' low byte says it."""
        return not (self.arrays[1][7] or self.arrays[2][7])

    def raw(self, name: str) -> bytes:
        return self.arrays[_AT[name]]

    def rows(self, key: Any) -> Iterator[tuple[Any, ...]]:
        """The reader's rows of this part: (key, TaskTry's ten fields, earlier)."""
        columns: list[list[Any]] = []
        for raw, oid in zip(self.arrays, TYPES, strict=True):
            columns.append(list(decode_texts(raw)) if oid == TEXT else decode_values(raw))
        for values in zip(*columns, strict=True):
            yield (key, *values, self.earlier)


@dataclass(frozen=True, eq=False)
class TryColumns:
    """The tries of one run: its current ones, then its earlier ones (either may be
    missing)."""

    parts: tuple[Part, ...]

    def __len__(self) -> int:
        return sum(p.count for p in self.parts)

    def rows(self, key: Any = 0) -> list[tuple[Any, ...]]:
        return [row for part in self.parts for row in part.rows(key)]

    @property
    def regular(self) -> bool:
        return all(p.regular for p in self.parts)

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[Any, ...]]) -> TryColumns:
        """The columns of the reader's rows (key, TaskTry's ten fields, earlier): what the
        server sends for them, for readers and tests that hold rows."""
        parts = []
        for earlier in (False, True):
            mine = [r for r in rows if bool(r[11]) == earlier]
            if not mine:
                continue
            arrays = [encode([r[1 + k] for r in mine], oid) for k, oid in enumerate(TYPES)]
            parts.append(Part(tuple(arrays), earlier))
        return cls(tuple(parts))

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
are a numpy structured array of (size, value)."""

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
TEXT, INT4, FLOAT8, BOOL = 25, 23, 701, 16

_FORMATS = {INT4: ">i4", FLOAT8: ">f8", BOOL: "?"}
_PACKED = {INT4: struct.Struct(">i"), FLOAT8: struct.Struct(">d"), BOOL: struct.Struct(">?")}


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
    "failed",
    "pool",
    "pool_slots",
    "scheduled",
    "queued",
    "start",
    "end",
)
TYPES = (TEXT, INT4, INT4, TEXT, BOOL, TEXT, INT4, FLOAT8, FLOAT8, FLOAT8, FLOAT8)
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


@lru_cache(maxsize=1024)
def decode_texts(raw: bytes) -> tuple[str | None, ...]:
    """The elements of a text array's binary form. The lists of task ids and of pools
    recur from run to run: each is decoded once."""
    count, _, _ = _head(raw)
    out: list[str | None] = []
    at = HEADER
    for _ in range(count):
        (size,) = _SIZE.unpack_from(raw, at)
        at += 4
        if size < 0:
            out.append(None)
        else:
            out.append(raw[at : at + size].decode("utf-8"))
            at += size
    return tuple(out)


def decode_values(raw: bytes) -> list[Any]:
    """The elements of a fixed-size array's binary form, NULL as None (NaN stays NaN)."""
    import numpy as np

    count, nulls, oid = _head(raw)
    if oid not in _FORMATS:
        raise ColumnsError(f"an array of type {oid} where numbers were expected")
    if not nulls:
        values: list[Any] = np.frombuffer(raw, element(oid), count, HEADER)["value"].tolist()
        return values
    out: list[Any] = []
    unpack = _PACKED[oid].unpack_from
    at = HEADER
    for _ in range(count):
        (size,) = _SIZE.unpack_from(raw, at)
        at += 4
        if size < 0:
            out.append(None)
        else:
            out.append(unpack(raw, at)[0])
            at += size
    return out


def encode(values: Sequence[Any], oid: int) -> bytes:
    """The binary form the server sends for an array of `values` (None: NULL)."""
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
        sends every other number, a NULL time as NaN). The flags' low byte says it."""
        return not (self.arrays[1][7] or self.arrays[2][7])

    def raw(self, name: str) -> bytes:
        return self.arrays[_AT[name]]

    def rows(self, key: Any) -> Iterator[tuple[Any, ...]]:
        """The reader's rows of this part: (key, TaskTry's ten fields, earlier), NaN times
        as None (the server sends a NULL time as NaN)."""
        columns: list[list[Any]] = []
        for raw, oid in zip(self.arrays, TYPES, strict=True):
            columns.append(list(decode_texts(raw)) if oid == TEXT else decode_values(raw))
        del columns[_AT["failed"]]
        for k in range(-4, 0):
            columns[k] = [None if v is None or v != v else v for v in columns[k]]
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
            arrays = []
            for name, oid in zip(NAMES, TYPES, strict=True):
                if name == "failed":
                    values: list[Any] = [r[4] == "failed" for r in mine]
                else:
                    k = 1 + NAMES.index(name) - (NAMES.index(name) > _AT["failed"])
                    values = [r[k] for r in mine]
                    if oid == FLOAT8:
                        values = [float("nan") if v is None else float(v) for v in values]
                arrays.append(encode(values, oid))
            parts.append(Part(tuple(arrays), earlier))
        return cls(tuple(parts))

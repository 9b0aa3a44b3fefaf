"""Size estimates for tables and btree indexes without bloat.

Estimates, not measurements: they use the planner's average column widths (pg_stats), so
they need an analyzed table, and they ignore btree deduplication and TOAST details. Both
omissions make a relation look smaller than the estimate, never larger, so the bloat we
report errs towards too little rather than too much. pgstattuple would measure exactly but
reads every page, which we will not do to a production server by default.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

MAXALIGN = 8
PAGE_HEADER = 24
ITEM_ID = 4
HEAP_TUPLE_HEADER = 23
INDEX_TUPLE_HEADER = 8
BTREE_SPECIAL = 16
BTREE_DEFAULT_FILLFACTOR = 90
HEAP_DEFAULT_FILLFACTOR = 100


def align(n: float, to: int = MAXALIGN) -> int:
    return int(math.ceil(n / to) * to)


@dataclass(frozen=True)
class ColumnWidth:
    avg_width: int
    null_frac: float


@dataclass(frozen=True)
class Estimate:
    actual_bytes: int
    expected_bytes: int

    @property
    def bloat_bytes(self) -> int:
        return max(self.actual_bytes - self.expected_bytes, 0)

    @property
    def bloat_ratio(self) -> float:
        return self.bloat_bytes / self.actual_bytes if self.actual_bytes else 0.0


def _data_width(columns: Sequence[ColumnWidth]) -> tuple[float, bool]:
    width = sum(c.avg_width * (1.0 - c.null_frac) for c in columns)
    return width, any(c.null_frac > 0 for c in columns)


def heap_expected_bytes(
    rows: float,
    columns: Sequence[ColumnWidth],
    block_size: int = 8192,
    fillfactor: int = HEAP_DEFAULT_FILLFACTOR,
) -> int:
    """Pages a freshly loaded heap of `rows` rows would take."""
    if rows <= 0:
        return 0
    width, has_nulls = _data_width(columns)
    header = HEAP_TUPLE_HEADER + (math.ceil(len(columns) / 8) if has_nulls else 0)
    tuple_bytes = align(header) + align(width) + ITEM_ID
    usable = (block_size - PAGE_HEADER) * fillfactor / 100
    per_page = max(int(usable // tuple_bytes), 1)
    return math.ceil(rows / per_page) * block_size


def btree_expected_bytes(
    rows: float,
    keys: Sequence[ColumnWidth],
    block_size: int = 8192,
    fillfactor: int = BTREE_DEFAULT_FILLFACTOR,
) -> int:
    """Pages a freshly built btree over `rows` entries would take: leaves, the inner levels
    above them, and the metapage."""
    width, has_nulls = _data_width(keys)
    header = INDEX_TUPLE_HEADER + (4 if has_nulls else 0)
    tuple_bytes = align(header + width) + ITEM_ID
    usable = (block_size - PAGE_HEADER - BTREE_SPECIAL) * fillfactor / 100
    per_page = max(int(usable // tuple_bytes), 2)
    pages = 1  # metapage
    level = max(rows, 1.0)
    while True:
        level = math.ceil(level / per_page)
        pages += level
        if level <= 1:
            break
    return int(pages) * block_size


def heap_estimate(
    actual_bytes: int,
    rows: float,
    columns: Sequence[ColumnWidth],
    block_size: int = 8192,
    fillfactor: int = HEAP_DEFAULT_FILLFACTOR,
) -> Estimate:
    return Estimate(actual_bytes, heap_expected_bytes(rows, columns, block_size, fillfactor))


def btree_estimate(
    actual_bytes: int,
    rows: float,
    keys: Sequence[ColumnWidth],
    block_size: int = 8192,
    fillfactor: int = BTREE_DEFAULT_FILLFACTOR,
) -> Estimate:
    return Estimate(actual_bytes, btree_expected_bytes(rows, keys, block_size, fillfactor))

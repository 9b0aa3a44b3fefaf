"""What can go wrong with a table that is already partitioned, read from its bounds and its
partitions' sizes: range partitions about to run out, a default partition that fills, and far
too many or far too few partitions for the data. (Statements that scan every partition need
their plans: checks/partitions.py.)"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from opscope.db.catalog import Table
from opscope.db.naming import unique_name
from opscope.db.partitions.model import Bound, literal
from opscope.findings import Severity
from opscope.sqltext import quote_ident
from opscope.units import human_bytes


@dataclass(frozen=True)
class Partition:
    table: Table
    bound: Bound

    @property
    def bytes(self) -> int:
        return self.table.total_bytes

    @property
    def rows(self) -> float:
        return max(self.table.rows, float(self.table.n_live_tup), 0.0)


@dataclass
class PartitionedTable:
    parent: Table
    strategy: str
    key_columns: tuple[str, ...]
    key_types: tuple[str, ...]
    partitions: list[Partition] = field(default_factory=list)

    @property
    def default(self) -> Partition | None:
        return next((p for p in self.partitions if p.bound.default), None)

    @property
    def time_key(self) -> bool:
        return (
            self.strategy == "r"
            and len(self.key_types) == 1
            and (self.key_types[0].startswith("timestamp") or self.key_types[0] == "date")
        )

    @property
    def total_bytes(self) -> int:
        return sum(p.bytes for p in self.partitions)


@dataclass(frozen=True)
class Problem:
    kind: str
    severity: Severity
    title: str
    detail: str
    recommendation: str
    evidence: dict[str, object]
    fix_sql: str | None = None


@dataclass(frozen=True)
class HealthLimits:
    runway_days: float
    premake: int
    max_partitions: int
    min_partition_bytes: int
    max_partition_bytes: int


def _next_partitions(
    pt: PartitionedTable, last: Partition, count: int, until: datetime, taken: set[str]
) -> tuple[list[str], datetime | None]:
    """CREATE TABLE for the ranges after `last`, as wide as it is: at least `count`, and
    until they reach past `until`."""
    assert last.bound.lower is not None and last.bound.upper is not None
    width = last.bound.upper - last.bound.lower
    monthly = timedelta(days=27) < width < timedelta(days=32)
    schema, parent = pt.parent.schema, pt.parent.name
    out: list[str] = []
    lower = last.bound.upper
    while len(out) < count or lower <= until:
        if monthly:
            upper = (lower.replace(day=28) + timedelta(days=4)).replace(day=1)
        else:
            upper = lower + width
        name = unique_name(parent, taken, f"_p{lower:%Y%m%d}")
        taken.add(name)
        out.append(
            f"CREATE TABLE {quote_ident(schema)}.{quote_ident(name)} PARTITION OF "
            f"{quote_ident(schema)}.{quote_ident(parent)} FOR VALUES FROM "
            f"({literal(lower, pt.key_types[0])}) TO ({literal(upper, pt.key_types[0])});"
        )
        lower = upper
    return out, lower


def runs_out(
    pt: PartitionedTable, now: datetime, limits: HealthLimits, taken: set[str]
) -> Problem | None:
    if not pt.time_key:
        return None
    ranged = [p for p in pt.partitions if p.bound.upper is not None or p.bound.open_ended]
    if not ranged or any(p.bound.open_ended for p in ranged):
        return None
    last = max(ranged, key=lambda p: p.bound.upper or now)
    if last.bound.upper is None or last.bound.lower is None:
        return None
    ends = last.bound.upper
    horizon = now + timedelta(days=limits.runway_days)
    if ends > horizon:
        return None
    key = pt.key_columns[0]
    ddl, _ = _next_partitions(pt, last, limits.premake, horizon, taken)
    where = (
        "go to the default partition, which then has to be emptied before a partition for "
        "them can be made"
        if pt.default is not None
        else 'are refused: INSERT fails with "no partition of relation ... found for row"'
    )
    already = ends <= now
    return Problem(
        kind="runs_out",
        severity=Severity.critical if already else Severity.warning,
        title=(
            f"{pt.parent.qualified}: no partition for rows from "
            f"{ends:%Y-%m-%d %H:%M} UTC on ({'already past' if already else 'soon'})"
        ),
        detail=(
            f"Its last range partition, {last.table.name}, ends at {ends:%Y-%m-%d %H:%M} UTC, "
            f"{'before now' if already else f'within {limits.runway_days:g} days'}: rows with "
            f"a later {key} {where}."
        ),
        recommendation=(
            f"Create the next {len(ddl)} partitions now (below), and schedule their "
            "creation ahead of time (pg_partman's run_maintenance, or a cron job)."
        ),
        evidence={
            "problem": "runs_out",
            "key": key,
            "last_partition": last.table.qualified,
            "ends_at": ends.isoformat(),
            "partitions": len(pt.partitions),
            "has_default": pt.default is not None,
        },
        fix_sql="\n".join(ddl),
    )


def default_fills(
    pt: PartitionedTable, previous_rows: float | None, days_since: float | None
) -> Problem | None:
    default = pt.default
    if default is None or default.rows <= 0:
        return None
    grew = previous_rows is not None and default.rows > previous_rows
    inserted = default.table.n_tup_ins > 0
    if not (grew or inserted):
        return None
    since = (
        f", {default.rows - (previous_rows or 0):,.0f} more than the previous run"
        f"{f' {days_since:.1f} days ago' if days_since else ''}"
        if grew
        else f", {default.table.n_tup_ins:,} inserted since the statistics were reset"
    )
    parent = f"{quote_ident(pt.parent.schema)}.{quote_ident(pt.parent.name)}"
    part = f"{quote_ident(default.table.schema)}.{quote_ident(default.table.name)}"
    return Problem(
        kind="default_fills",
        severity=Severity.warning,
        title=(
            f"{pt.parent.qualified}: the default partition {default.table.name} keeps growing "
            f"({default.rows:,.0f} rows)"
        ),
        detail=(
            f"Rows no partition takes land in {default.table.name}: {default.rows:,.0f} rows, "
            f"{human_bytes(default.bytes)}{since}. Every query that could prune to one range "
            "reads it too, and creating a partition for values it holds fails until those rows "
            "move out (each new partition scans it under ACCESS EXCLUSIVE)."
        ),
        recommendation=(
            "Create the partitions its rows belong to: detach it (DETACH PARTITION ... "
            "CONCURRENTLY on 14+), create them, move its rows with INSERT ... SELECT and "
            "DELETE, then attach it again; keep future partitions created ahead of time."
        ),
        evidence={
            "problem": "default_fills",
            "default_partition": default.table.qualified,
            "rows": default.rows,
            "bytes": default.bytes,
            "inserted": default.table.n_tup_ins,
            "previous_rows": previous_rows,
            "detach": f"ALTER TABLE {parent} DETACH PARTITION {part} CONCURRENTLY;",
        },
    )


def partition_count(pt: PartitionedTable, limits: HealthLimits) -> Problem | None:
    leaves = [p for p in pt.partitions if not p.table.partitioned]
    if len(leaves) < 1:
        return None
    sizes = sorted(p.bytes for p in leaves)
    middle = sizes[len(sizes) // 2]
    biggest = max(leaves, key=lambda p: p.bytes)
    evidence: dict[str, object] = {
        "partitions": len(leaves),
        "total_bytes": pt.total_bytes,
        "median_partition_bytes": middle,
        "largest_partition": biggest.table.qualified,
        "largest_partition_bytes": biggest.bytes,
    }
    if len(leaves) > limits.max_partitions or (
        len(leaves) >= 2 * limits.premake + 8 and middle < limits.min_partition_bytes
    ):
        return Problem(
            kind="too_many",
            severity=Severity.warning,
            title=(
                f"{pt.parent.qualified}: {len(leaves)} partitions of "
                f"{human_bytes(middle)} (median): far too many for the data"
            ),
            detail=(
                "Every statement the planner cannot prune plans (and locks) each partition; "
                f"planning time and lock-table use grow with {len(leaves)} of them, while "
                f"the median partition holds only {human_bytes(middle)}."
            ),
            recommendation=(
                "Use a coarser range (weeks or months instead of days), or fewer hash "
                "partitions, for new data; merge old partitions when they are detached."
            ),
            evidence={"problem": "too_many", **evidence},
        )
    if biggest.bytes >= limits.max_partition_bytes and (
        len(leaves) <= 2 or biggest.bytes >= 0.9 * pt.total_bytes
    ):
        return Problem(
            kind="too_few",
            severity=Severity.warning,
            title=(
                f"{pt.parent.qualified}: {biggest.table.name} holds "
                f"{human_bytes(biggest.bytes)} of {human_bytes(pt.total_bytes)}: far too few "
                "partitions"
            ),
            detail=(
                "Partitioning pays when scans and maintenance touch a part of the data; one "
                "partition holding nearly all of it is vacuumed, scanned and indexed as the "
                "large table it was."
            ),
            recommendation=(
                "Split it: finer ranges (or more hash partitions) for new data, and move the "
                "old rows into partitions of their own in batches."
            ),
            evidence={"problem": "too_few", **evidence},
        )
    return None


def health(
    pt: PartitionedTable,
    now: datetime,
    limits: HealthLimits,
    taken: set[str],
    previous_default_rows: float | None = None,
    days_since: float | None = None,
) -> Sequence[Problem]:
    found = [
        runs_out(pt, now, limits, taken),
        default_fills(pt, previous_default_rows, days_since),
        partition_count(pt, limits),
    ]
    return [p for p in found if p is not None]

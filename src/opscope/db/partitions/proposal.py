"""A partitioning plan for one table: key, strategy, partitions and their sizes, the
constraints that must change, the DDL, a migration with the locks of each step, and a
pg_partman configuration. Pure: every figure comes in as an argument (see checks/partitions.py
for where each is read)."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from opscope.db.catalog import Index
from opscope.db.naming import unique_name
from opscope.db.partitions.model import INTERVALS, MONTH, ColumnFacts, Interval, literal
from opscope.sqltext import quote_ident

#: list partitioning when a tenant key has at most this many values; hash beyond
MAX_LIST_VALUES = 16
#: hash partitions proposed at most / at least
MAX_HASH_PARTITIONS = 64
MIN_HASH_PARTITIONS = 4


@dataclass(frozen=True)
class KeyUse:
    """How the workload filters one table on one column."""

    column: str
    #: calls of the statements that filter on it, and their share of the table's calls
    calls: int
    share: float
    #: a range (time) filter, or equality only (a tenant)
    ranges: bool
    #: a DELETE filters on it: rows leave by age (retention)
    retention: bool = False
    #: how far back from now its lower bounds reach, in days (pg_qualstats' constants)
    query_days: float | None = None
    #: where the predicates were seen (pg_stat_statements, pg_qualstats)
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class PartitionSpec:
    name: str
    bound: str
    expected_rows: float
    expected_bytes: float


@dataclass(frozen=True)
class Step:
    title: str
    sql: str
    locks: str


@dataclass(frozen=True)
class ConstraintChange:
    index: str
    kind: str
    columns: tuple[str, ...]
    becomes: tuple[str, ...]


@dataclass
class Proposal:
    table: str
    key: str
    key_type: str
    strategy: str
    interval: Interval | None
    partitions: list[PartitionSpec]
    #: rows per day of key values, and where that rate was read
    rows_per_day: float | None
    rate_source: str
    constraints: list[ConstraintChange]
    ddl: str
    migration: list[Step]
    partman: str | None
    #: why this strategy and size, in words
    reasons: list[str] = field(default_factory=list)
    #: the parent's name while both tables exist
    new_name: str = ""
    #: the attach migration makes the table the partition of everything before this
    attach_before: datetime | None = None

    @property
    def partition_count(self) -> int:
        return len(self.partitions)


@dataclass(frozen=True)
class Limits:
    min_partition_rows: int
    max_partitions: int
    max_partition_bytes: int
    premake: int


def choose_interval(
    rows_per_day: float,
    span_days: float,
    query_days: float | None,
    limits: Limits,
) -> tuple[Interval, str]:
    """The range width: as fine as the ranges queries ask for (so they read one or two
    partitions), never so fine that a partition holds fewer than `min_partition_rows` rows
    or that the data takes more than `max_partitions` partitions."""

    def fits(i: Interval) -> bool:
        count = math.ceil(span_days / i.days) + limits.premake
        return count <= limits.max_partitions and (
            rows_per_day * i.days >= limits.min_partition_rows or i is MONTH
        )

    eligible = [i for i in INTERVALS if fits(i)] or [MONTH]
    if query_days is not None:
        asked = [i for i in eligible if i.days <= max(query_days, 1.0)]
        if asked:
            return asked[-1], (
                f"queries reach {query_days:.1f} days back: {asked[-1].name}ly partitions "
                "let them read one or two"
            )
    chosen = eligible[0]
    # a partition past max_partition_bytes is its own large table: take the finer width
    return chosen, (
        f"{rows_per_day:,.0f} rows a day: {chosen.name}ly partitions hold "
        f"{rows_per_day * chosen.days:,.0f} rows each (at least "
        f"{limits.min_partition_rows:,} rows a partition)"
    )


def _names(schema: str, taken: Collection[tuple[str, str]]) -> set[str]:
    return {name for s, name in taken if s == schema}


def _index_sql(idx: Index, parent: str, key: str, unique: bool) -> str:
    keys = list(idx.key_defs)
    if unique and key not in idx.attnames[: idx.key_count]:
        keys.append(quote_ident(key))
    include = f" INCLUDE ({', '.join(idx.include_defs)})" if idx.include_defs else ""
    where = f" WHERE {idx.predicate}" if idx.predicate else ""
    return (
        f"CREATE {'UNIQUE ' if unique else ''}INDEX ON {parent} USING {idx.method} "
        f"({', '.join(keys)}){include}{where};"
    )


def constraint_changes(indexes: Sequence[Index], key: str) -> list[ConstraintChange]:
    """Every primary key, unique index and exclusion constraint must hold the partition key:
    PostgreSQL enforces uniqueness per partition only."""
    out: list[ConstraintChange] = []
    for idx in indexes:
        if not (idx.is_primary or idx.is_unique or idx.is_exclusion):
            continue
        columns = tuple(c or "?" for c in idx.attnames[: idx.key_count])
        if key in columns:
            continue
        kind = (
            "primary key"
            if idx.is_primary
            else "exclusion constraint"
            if idx.is_exclusion
            else "unique constraint"
            if idx.constraint_type
            else "unique index"
        )
        out.append(ConstraintChange(idx.name, kind, columns, (*columns, key)))
    return out


def _parent_ddl(
    table: str,
    parent: str,
    key: str,
    strategy: str,
    indexes: Sequence[Index],
) -> list[str]:
    lines = [
        f"CREATE TABLE {parent} (LIKE {table} INCLUDING ALL EXCLUDING INDEXES)"
        f" PARTITION BY {strategy.upper()} ({quote_ident(key)});"
    ]
    for idx in indexes:
        if not idx.is_valid or idx.is_exclusion:
            continue
        if idx.is_primary:
            columns = [quote_ident(c or "") for c in idx.attnames[: idx.key_count]]
            if key not in idx.attnames[: idx.key_count]:
                columns.append(quote_ident(key))
            lines.append(f"ALTER TABLE {parent} ADD PRIMARY KEY ({', '.join(columns)});")
        else:
            lines.append(_index_sql(idx, parent, key, idx.is_unique))
    return lines


def range_proposal(
    *,
    schema: str,
    name: str,
    key: ColumnFacts,
    use: KeyUse,
    first: datetime,
    now: datetime,
    rows: float,
    total_bytes: int,
    rows_per_day: float,
    rate_source: str,
    indexes: Sequence[Index],
    taken: Collection[tuple[str, str]],
    limits: Limits,
    partman: tuple[str, str] | None,
) -> Proposal:
    table = f"{quote_ident(schema)}.{quote_ident(name)}"
    span_days = max((now - first).total_seconds() / 86400, 1.0)
    interval, why = choose_interval(rows_per_day, span_days, use.query_days, limits)
    names = _names(schema, taken)
    parent_name = unique_name(name, names, "_partitioned")
    names.add(parent_name)
    parent = f"{quote_ident(schema)}.{quote_ident(parent_name)}"
    bytes_per_row = total_bytes / rows if rows > 0 else 0.0

    starts: list[datetime] = []
    start = interval.floor(first)
    horizon = interval.floor(now)
    for _ in range(limits.premake):
        horizon = interval.next(horizon)
    while start <= horizon:
        starts.append(start)
        start = interval.next(start)
    partitions: list[PartitionSpec] = []
    for lower in starts:
        upper = interval.next(lower)
        part = unique_name(name, names, f"_p{interval.suffix(lower)}")
        names.add(part)
        # rows of the past spread at the observed rate; the future ones fill as they come
        days = (upper - lower).total_seconds() / 86400
        expected = rows_per_day * days
        partitions.append(
            PartitionSpec(
                part,
                f"FROM ({literal(lower, key.type)}) TO ({literal(upper, key.type)})",
                expected,
                expected * bytes_per_row,
            )
        )
    default_name = unique_name(name, names, "_default")
    ddl = _parent_ddl(table, parent, key.name, "range", indexes)
    ddl += [
        f"CREATE TABLE {quote_ident(schema)}.{quote_ident(p.name)} PARTITION OF {parent}"
        f" FOR VALUES {p.bound};"
        for p in partitions
    ]
    ddl.append(
        f"CREATE TABLE {quote_ident(schema)}.{quote_ident(default_name)} PARTITION OF "
        f"{parent} DEFAULT;"
    )
    constraints = constraint_changes(indexes, key.name)
    reasons = [why]
    if use.retention:
        reasons.append(
            "a DELETE removes rows by age: dropping (or detaching) the oldest partition "
            "replaces it, without the dead rows and the vacuum"
        )
    cut = interval.floor(now)
    for _ in range(2):
        cut = interval.next(cut)
    proposal = Proposal(
        table=f"{schema}.{name}",
        key=key.name,
        key_type=key.type,
        strategy="range",
        interval=interval,
        partitions=partitions,
        rows_per_day=rows_per_day,
        rate_source=rate_source,
        constraints=constraints,
        ddl="\n".join(ddl),
        migration=range_migration(
            schema, name, parent_name, key, cut, constraints, taken, bool(partitions)
        ),
        partman=partman_config(partman, parent, key.name, interval, starts, use, now, first),
        reasons=reasons,
        new_name=parent_name,
        attach_before=cut,
    )
    return proposal


def range_migration(
    schema: str,
    name: str,
    parent_name: str,
    key: ColumnFacts,
    cut: datetime,
    constraints: Sequence[ConstraintChange],
    taken: Collection[tuple[str, str]],
    has_partitions: bool,
) -> list[Step]:
    """Attach the table as it is as the partition of everything before `cut` (no copy: a
    validated CHECK spares ATTACH its scan), and the alternative, a copy in batches."""
    table = f"{quote_ident(schema)}.{quote_ident(name)}"
    parent = f"{quote_ident(schema)}.{quote_ident(parent_name)}"
    col = quote_ident(key.name)
    names = _names(schema, taken) | {parent_name}
    legacy = unique_name(name, names, "_legacy")
    check = unique_name(name, names, f"_{key.name}_bound")
    cut_sql = literal(cut, key.type)
    steps = [
        Step(
            "Create the partitioned parent and its indexes (the DDL), with no partition "
            f"before {cut:%Y-%m-%d}: the table itself becomes that one.",
            "-- the DDL's CREATE TABLE ... PARTITION BY, its indexes, and the partitions "
            f"from {cut:%Y-%m-%d} on",
            "none on the table",
        )
    ]
    pk = next((c for c in constraints if c.kind == "primary key"), None)
    keep_unique = [c for c in constraints if c.kind != "primary key"]
    if pk is not None:
        new_pk = unique_name(name, names, "_" + "_".join(pk.becomes) + "_key")
        steps.append(
            Step(
                "Build the unique index the partitioned primary key needs, on the table as it "
                "is, while it is used.",
                f"CREATE UNIQUE INDEX CONCURRENTLY {quote_ident(new_pk)} ON {table} "
                f"({', '.join(quote_ident(c) for c in pk.becomes)});",
                "SHARE UPDATE EXCLUSIVE on the table: reads and writes go on",
            )
        )
    steps += [
        Step(
            f"Promise that every row is before {cut:%Y-%m-%d}, without checking yet.",
            f"ALTER TABLE {table} ADD CONSTRAINT {quote_ident(check)} CHECK ({col} IS NOT NULL "
            f"AND {col} < {cut_sql}) NOT VALID;",
            "ACCESS EXCLUSIVE on the table, for a moment (no scan)",
        ),
        Step(
            "Check the promise: one scan of the table.",
            f"ALTER TABLE {table} VALIDATE CONSTRAINT {quote_ident(check)};",
            "SHARE UPDATE EXCLUSIVE on the table: reads and writes go on",
        ),
    ]
    switch = [f"ALTER TABLE {table} ALTER COLUMN {col} SET NOT NULL;"]
    if pk is not None:
        switch += [
            f"ALTER TABLE {table} DROP CONSTRAINT {quote_ident(pk.index)};",
            f"ALTER TABLE {table} ADD PRIMARY KEY USING INDEX {quote_ident(new_pk)};",
        ]
    switch += [
        f"ALTER TABLE {table} RENAME TO {quote_ident(legacy)};",
        f"ALTER TABLE {parent} RENAME TO {quote_ident(name)};",
        f"ALTER TABLE {table} ATTACH PARTITION {quote_ident(schema)}.{quote_ident(legacy)} "
        f"FOR VALUES FROM (MINVALUE) TO ({cut_sql});",
    ]
    steps.append(
        Step(
            f"Switch, in one transaction and before {cut:%Y-%m-%d} (rows from then on would "
            "break the promise): the table becomes the partition of the past.",
            "BEGIN;\n" + "\n".join(switch) + "\nCOMMIT;",
            "ACCESS EXCLUSIVE on both tables until COMMIT, with no scan (the validated CHECK "
            "proves NOT NULL and the bound); foreign keys that reference the table must be "
            "dropped first and made again on the new key",
        )
    )
    if keep_unique:
        steps.append(
            Step(
                "Unique constraints without the key cannot stay as they are on a partitioned "
                "table: "
                + "; ".join(
                    f"{c.index} ({', '.join(c.columns)}) becomes ({', '.join(c.becomes)})"
                    for c in keep_unique
                ),
                "",
                "as the primary key's",
            )
        )
    steps.append(
        Step(
            "Or copy instead of attaching, for partitions of even size: run the whole DDL, "
            "copy one partition's range at a time, then catch up and swap the names.",
            # advice shown to the user, never run by opscope; names are quoted identifiers
            f"INSERT INTO {parent} SELECT * FROM {table} WHERE {col} >= <lower> AND {col} < "  # noqa: S608
            f"<upper>;  -- per partition\nBEGIN;\nLOCK TABLE {table} IN EXCLUSIVE MODE;\n"
            f"INSERT INTO {parent} SELECT * FROM {table} WHERE {col} >= <last copied>;\n"
            f"ALTER TABLE {table} RENAME TO {quote_ident(legacy)};\n"
            f"ALTER TABLE {parent} RENAME TO {quote_ident(name)};\nCOMMIT;",
            "ACCESS SHARE on the table while copying (reads and writes go on); EXCLUSIVE "
            "during the catch-up (writes wait, reads go on), ACCESS EXCLUSIVE for the renames"
            if has_partitions
            else "",
        )
    )
    return steps


def partman_config(
    partman: tuple[str, str] | None,
    parent: str,
    key: str,
    interval: Interval,
    starts: Sequence[datetime],
    use: KeyUse,
    now: datetime,
    first: datetime,
) -> str | None:
    """create_parent for the installed pg_partman (4.x says 'native', 5.x 'range'), and its
    retention when rows leave by age."""
    if partman is None:
        return None
    schema, version = partman
    major = int(version.split(".")[0]) if version.split(".")[0].isdigit() else 5
    kind = "native" if major < 5 else "range"
    start = starts[0] if starts else interval.floor(now)
    lines = [
        f"SELECT {quote_ident(schema)}.create_parent(p_parent_table := "
        f"'{parent.replace(chr(39), chr(39) * 2)}', p_control := '{key}', p_type := '{kind}', "
        f"p_interval := '{interval.sql}', p_premake := 4, "
        f"p_start_partition := '{start:%Y-%m-%d %H:%M:%S}+00');"
    ]
    if use.retention:
        days = max(math.ceil((now - first) / timedelta(days=1)), 1)
        lines.append(
            # advice shown to the user, never run by opscope
            f"UPDATE {quote_ident(schema)}.part_config SET retention = '{days} days', "  # noqa: S608
            f"retention_keep_table = false WHERE parent_table = "
            f"'{parent.replace(chr(39), chr(39) * 2)}';"
        )
    return "\n".join(lines)


def tenant_proposal(
    *,
    schema: str,
    name: str,
    key: ColumnFacts,
    use: KeyUse,
    rows: float,
    total_bytes: int,
    indexes: Sequence[Index],
    taken: Collection[tuple[str, str]],
    limits: Limits,
) -> Proposal:
    """LIST by tenant when there are few, each value its partition (its size from the most
    common values' shares); HASH beyond, as many as keep each under max_partition_bytes."""
    table = f"{quote_ident(schema)}.{quote_ident(name)}"
    names = _names(schema, taken)
    parent_name = unique_name(name, names, "_partitioned")
    names.add(parent_name)
    parent = f"{quote_ident(schema)}.{quote_ident(parent_name)}"
    distinct = key.distinct_values(rows) or 0.0
    bytes_per_row = total_bytes / rows if rows > 0 else 0.0
    partitions: list[PartitionSpec] = []
    listed = (
        distinct <= MAX_LIST_VALUES
        and key.common_values
        and len(key.common_values) >= distinct - 0.5
    )
    if listed:
        strategy = "list"
        for value, share in zip(key.common_values, key.common_shares, strict=False):
            part = unique_name(name, names, "_" + "".join(c for c in value if c.isalnum())[:20])
            names.add(part)
            partitions.append(
                PartitionSpec(
                    part,
                    f"IN ({_value_literal(value, key.type)})",
                    share * rows,
                    share * rows * bytes_per_row,
                )
            )
        reason = f"{distinct:.0f} values of {key.name}: one partition each"
    else:
        strategy = "hash"
        wanted = max(total_bytes / max(limits.max_partition_bytes, 1), MIN_HASH_PARTITIONS)
        modulus = min(1 << math.ceil(math.log2(wanted)), MAX_HASH_PARTITIONS)
        for remainder in range(modulus):
            part = unique_name(name, names, f"_h{remainder}")
            names.add(part)
            partitions.append(
                PartitionSpec(
                    part,
                    f"WITH (MODULUS {modulus}, REMAINDER {remainder})",
                    rows / modulus,
                    total_bytes / modulus,
                )
            )
        reason = (
            f"about {distinct:,.0f} values of {key.name}: hashed into {modulus} partitions "
            f"of about {rows / modulus:,.0f} rows"
        )
    ddl = _parent_ddl(table, parent, key.name, strategy, indexes)
    ddl += [
        f"CREATE TABLE {quote_ident(schema)}.{quote_ident(p.name)} PARTITION OF {parent}"
        f" FOR VALUES {p.bound};"
        for p in partitions
    ]
    if strategy == "list":
        default_name = unique_name(name, names, "_default")
        ddl.append(
            f"CREATE TABLE {quote_ident(schema)}.{quote_ident(default_name)} PARTITION OF "
            f"{parent} DEFAULT;"
        )
    legacy = unique_name(name, names, "_legacy")
    col = quote_ident(key.name)
    migration = [
        Step("Create the partitioned table and its partitions (the DDL).", "-- the DDL", "none"),
        Step(
            "Copy one tenant (or one hash remainder) at a time.",
            f"INSERT INTO {parent} SELECT * FROM {table} WHERE {col} = <tenant>;",  # noqa: S608
            "ACCESS SHARE on the table: reads and writes go on",
        ),
        Step(
            "Catch up and swap the names in one transaction.",
            f"BEGIN;\nLOCK TABLE {table} IN EXCLUSIVE MODE;\n-- copy the rows written since\n"
            f"ALTER TABLE {table} RENAME TO {quote_ident(legacy)};\n"
            f"ALTER TABLE {parent} RENAME TO {quote_ident(name)};\nCOMMIT;",
            "EXCLUSIVE during the catch-up (writes wait, reads go on), ACCESS EXCLUSIVE for "
            "the renames",
        ),
    ]
    return Proposal(
        table=f"{schema}.{name}",
        key=key.name,
        key_type=key.type,
        strategy=strategy,
        interval=None,
        partitions=partitions,
        rows_per_day=None,
        rate_source="",
        constraints=constraint_changes(indexes, key.name),
        ddl="\n".join(ddl),
        migration=migration,
        partman=None,
        reasons=[reason],
        new_name=parent_name,
    )


def _value_literal(value: str, type_name: str) -> str:
    if type_name in ("integer", "bigint", "smallint") or type_name.startswith("numeric"):
        return value if value.lstrip("-").replace(".", "", 1).isdigit() else "NULL"
    return "'" + value.replace("'", "''") + "'"

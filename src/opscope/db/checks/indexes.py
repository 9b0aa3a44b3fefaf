"""Index review: unused, duplicate, redundant, invalid and bloated indexes, and foreign keys
that no index serves."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from opscope.db.bloat import ColumnWidth, btree_estimate
from opscope.db.catalog import ColumnStat, Index
from opscope.db.checks.base import DbCheck
from opscope.db.context import DbContext
from opscope.db.naming import BUILD_PREFIX, name_stem
from opscope.findings import Finding, Severity
from opscope.sqltext import qualified, quote_ident
from opscope.units import human_bytes


def _drop_sql(idx: Index) -> str:
    if idx.on_partitioned:
        # a partitioned index cannot be dropped concurrently; this drops its partitions' too
        return f"DROP INDEX {qualified(idx.schema, idx.name)};"
    return f"DROP INDEX CONCURRENTLY {qualified(idx.schema, idx.name)};"


_PARTITIONED_DROP = (
    " It is a partitioned index: PostgreSQL cannot drop it concurrently, so the DROP locks "
    "the partitions while it runs; do it in a quiet moment."
)


def _own(indexes: list[Index]) -> list[Index]:
    """Leave out partitions' indexes attached to a partitioned index: they cannot be dropped
    on their own, and the partitioned index stands for them."""
    return [i for i in indexes if i.parent_index_oid is None]


def _live(context: DbContext) -> list[Index]:
    return [i for i in context.catalog.indexes if i.is_valid and i.is_ready]


def _comparable(context: DbContext) -> list[Index]:
    """Live indexes whose definitions could be read (not behind another session's lock)."""
    return [i for i in _live(context) if i.details_known]


def _index_evidence(idx: Index) -> dict[str, object]:
    return {
        "index": idx.qualified,
        "definition": idx.definition,
        "bytes": idx.bytes,
        # what dropping it gives back; a fix is ranked by it (docs/findings.md)
        "bytes_freed": idx.bytes,
        "size": human_bytes(idx.bytes),
        "idx_scan": idx.idx_scan,
    }


class UnusedIndex(DbCheck):
    id = "unused_index"
    category = "indexes"
    summary = (
        "An index with no scans since statistics were reset that enforces nothing (not a "
        "primary key, unique or exclusion constraint, nor the replica identity)."
    )

    def run(self, context: DbContext) -> Iterable[Finding]:
        summary = context.summary
        age_days = summary.stats_age_days
        young = age_days < context.thresholds.unused_index_min_stats_age_days
        since = "last reset" if summary.stats_reset else "server start (never reset)"
        catalog = context.catalog
        for idx in _own(_live(context)):
            scans = catalog.index_scans(idx)
            watched = context.observed_index(idx.qualified) if not idx.on_partitioned else None
            if watched is not None:
                # the store saw further back than the server's statistics (a reset, a
                # failover since): its scans over that window are the better evidence
                scans = watched.counters.get("idx_scan", 0)
            if scans > 0 or idx.protected:
                continue
            fk = _only_index_for_fk(idx, context)
            if fk is not None:
                yield self.finding(
                    context,
                    severity=Severity.info,
                    object=idx.qualified,
                    columns=list(idx.key_defs),
                    title=(f"Unused index {idx.qualified} on {idx.table} serves foreign key {fk}"),
                    detail=(
                        f"It has not been scanned since the statistics {since}, but it is the "
                        f"only index serving foreign key {fk}: without it every delete or key "
                        "update on the referenced table would scan this table."
                    ),
                    evidence={**_index_evidence(idx), "table": idx.table, "serves_fk": fk},
                    recommendation="Keep it.",
                )
                continue
            detail = (
                f"It has not been scanned since the statistics {since}, {age_days:.1f} days ago, "
                "yet every insert and non-HOT update of the table must maintain it."
            )
            observed: dict[str, object] = {}
            short = young
            if watched is not None:
                days = (summary.now - watched.since).total_seconds() / 86400
                short = days < context.thresholds.unused_index_min_stats_age_days
                detail = (
                    f"It has not been scanned in the {days:.1f} days opscope serve has watched "
                    f"it (since {watched.since:%Y-%m-%d %H:%M} UTC), across statistics resets "
                    "and failovers, yet every insert and non-HOT update of the table must "
                    "maintain it."
                )
                observed = {
                    "observed_since": watched.since.isoformat(),
                    "observed_days": round(days, 2),
                    "observed_scans": 0,
                }
            if short:
                detail += " The statistics are young: confirm over a full business cycle."
            detail += " Check standbys too: scans there are not counted on the primary."
            yield self.finding(
                context,
                severity=Severity.info if short else Severity.warning,
                object=idx.qualified,
                columns=list(idx.key_defs),
                title=f"Unused index {idx.qualified} on {idx.table} ({human_bytes(idx.bytes)})",
                detail=detail,
                evidence={
                    **_index_evidence(idx),
                    "table": idx.table,
                    "stats_since": summary.stats_since.isoformat(),
                    "stats_age_days": round(age_days, 2),
                    **observed,
                },
                recommendation="Drop it if no standby or periodic job needs it."
                + (_PARTITIONED_DROP if idx.on_partitioned else ""),
                fix_sql=_drop_sql(idx),
            )


def _identity(idx: Index) -> tuple[object, ...]:
    # uniqueness is not part of it: a plain index with a unique one's key is a copy of it
    # (redundant_index leaves equal keys to this check); two unique indexes that treat NULLs
    # differently are told apart in DuplicateIndex.run
    return (
        idx.table_oid,
        idx.method,
        idx.key_signature(),
        idx.include_defs,
        idx.predicate,
    )


def _keeper(group: list[Index]) -> Index:
    """The one to keep: it enforces something, else it is the most used, else the oldest."""
    return max(group, key=lambda i: (i.protected, i.backs_constraint, i.idx_scan, -i.oid))


class DuplicateIndex(DbCheck):
    id = "duplicate_index"
    category = "indexes"
    summary = (
        "Two or more valid indexes on the same table with the same method, key columns or "
        "expressions, operator classes, collations, sort options, INCLUDE columns and predicate."
    )

    def run(self, context: DbContext) -> Iterable[Finding]:
        groups: dict[tuple[object, ...], list[Index]] = {}
        for idx in _own(_comparable(context)):
            groups.setdefault(_identity(idx), []).append(idx)
        for group in groups.values():
            if len(group) < 2:
                continue
            keep = _keeper(group)
            for idx in group:
                if idx is keep:
                    continue
                if idx.is_unique and (
                    not keep.is_unique or idx.nulls_not_distinct != keep.nulls_not_distinct
                ):
                    continue  # it enforces something the kept one does not
                if idx.is_replica_identity:
                    fix = None
                    target = (
                        "DEFAULT" if keep.is_primary else f"USING INDEX {quote_ident(keep.name)}"
                    )
                    rec = (
                        f"{idx.qualified} is the replica identity of {idx.table}: move it first "
                        f"(ALTER TABLE {qualified(idx.schema, idx.table_name)} REPLICA IDENTITY "
                        f"{target};), then drop {idx.qualified}."
                    )
                elif idx.backs_constraint:
                    # both enforce constraints: dropping needs the constraint moved first
                    fix = None
                    rec = (
                        f"Both back constraints; drop constraint {idx.constraint_name} or "
                        f"re-point it before dropping the index."
                    )
                else:
                    fix = _drop_sql(idx)
                    rec = f"Drop {idx.qualified}; {keep.qualified} serves the same queries."
                yield self.finding(
                    context,
                    severity=Severity.warning,
                    object=idx.qualified,
                    columns=list(idx.key_defs),
                    title=f"Duplicate index {idx.qualified} repeats {keep.qualified}",
                    detail=(
                        f"{idx.qualified} and {keep.qualified} index the same thing on "
                        f"{idx.table}; the copy costs {human_bytes(idx.bytes)} and slows writes."
                    ),
                    evidence={
                        **_index_evidence(idx),
                        "duplicate_of": keep.qualified,
                        "duplicate_of_definition": keep.definition,
                    },
                    recommendation=rec,
                    fix_sql=fix,
                )


def _predicate_compatible(narrow: Index, wide: Index) -> bool:
    # the wider index must cover every row the narrower one does
    return wide.predicate is None or wide.predicate == narrow.predicate


class RedundantIndex(DbCheck):
    id = "redundant_index"
    category = "indexes"
    summary = (
        "A non-unique btree whose key is a leading prefix of another valid btree's key on the "
        "same table, with a compatible predicate; the longer index serves its queries."
    )

    def run(self, context: DbContext) -> Iterable[Finding]:
        by_table: dict[int, list[Index]] = {}
        for idx in _own(_comparable(context)):
            if idx.method == "btree":
                by_table.setdefault(idx.table_oid, []).append(idx)
        for indexes in by_table.values():
            for narrow in indexes:
                if narrow.protected:
                    continue
                for wide in indexes:
                    if wide is narrow or not self._covers(wide, narrow):
                        continue
                    yield self.finding(
                        context,
                        severity=Severity.warning,
                        object=narrow.qualified,
                        columns=list(narrow.key_defs),
                        title=(
                            f"Redundant index {narrow.qualified}: its key leads {wide.qualified}"
                        ),
                        detail=(
                            f"({', '.join(narrow.key_defs)}) is a leading prefix of "
                            f"({', '.join(wide.key_defs)}), so {wide.qualified} answers the same "
                            f"lookups; {narrow.qualified} costs {human_bytes(narrow.bytes)} and "
                            "write time."
                        ),
                        evidence={
                            **_index_evidence(narrow),
                            "covered_by": wide.qualified,
                            "covered_by_definition": wide.definition,
                        },
                        recommendation=f"Drop {narrow.qualified} and keep {wide.qualified}.",
                        fix_sql=_drop_sql(narrow),
                    )
                    break

    @staticmethod
    def _covers(wide: Index, narrow: Index) -> bool:
        n = narrow.key_count
        if n > wide.key_count or not _predicate_compatible(narrow, wide):
            return False
        if narrow.key_signature() != wide.key_signature(n):
            return False
        # the same key is duplicate_index's business, whatever the uniqueness
        if n == wide.key_count:
            return False
        # INCLUDE columns of the narrow one must be available from the wide one for
        # index-only scans to keep working
        return set(narrow.include_defs) <= set(wide.column_defs)


class InvalidIndex(DbCheck):
    id = "invalid_index"
    category = "indexes"
    summary = (
        "An index marked invalid, typically left behind by a failed CREATE INDEX CONCURRENTLY "
        "or REINDEX CONCURRENTLY; it is maintained on writes but never used for reads."
    )

    def run(self, context: DbContext) -> Iterable[Finding]:
        for idx in context.catalog.indexes:
            if idx.is_valid:
                continue
            if idx.on_partitioned:
                # a partitioned index cannot be built concurrently; an invalid one usually
                # lacks a partition's index: build those concurrently, then attach them
                definition = (
                    "create the missing partition indexes CONCURRENTLY and ALTER INDEX ... "
                    "ATTACH PARTITION them, or rebuild it: "
                    + (idx.definition or "CREATE INDEX ... with its original definition")
                )
            else:
                definition = (
                    idx.definition.replace(" INDEX ", " INDEX CONCURRENTLY ", 1)
                    if idx.definition
                    else "CREATE INDEX CONCURRENTLY ... with its original definition"
                )
            title = f"Invalid index {idx.qualified} on {idx.table}"
            detail = (
                "The planner ignores it, but inserts and updates may still pay to maintain "
                "it. A failed concurrent build leaves such an index behind."
            )
            recommendation = (
                "Drop it, fix what made the build fail (duplicates for a unique index, a "
                f"timeout), then build it again: {definition};"
            )
            evidence = {**_index_evidence(idx), "is_ready": idx.is_ready}
            if idx.name.startswith(BUILD_PREFIX):
                # opscope's own: --verify --apply builds under this prefix, renames when valid
                title += ", left by an interrupted opscope indexes advise --verify --apply"
                detail = (
                    f"opscope builds each index under a {BUILD_PREFIX}... name and renames it "
                    "once it is valid; this build was stopped half-way (the process was "
                    "killed, or its session cancelled or lost). The planner ignores it, but "
                    "inserts and updates may still pay to maintain it."
                )
                recommendation = (
                    "Drop it: it is opscope's unfinished build, which nothing uses and nothing "
                    "needs rebuilt; run the advisor again to have the index proposed (or built "
                    "with --verify --apply) under its own name."
                )
                evidence["left_by_opscope"] = True
            yield self.finding(
                context,
                severity=Severity.warning,
                object=idx.qualified,
                columns=list(idx.key_defs),
                title=title,
                detail=detail,
                evidence=evidence,
                recommendation=recommendation,
                fix_sql=_drop_sql(idx),
            )


class IndexBloat(DbCheck):
    id = "index_bloat"
    category = "indexes"
    summary = (
        "A btree index whose size exceeds the estimate for its entries by more than "
        "thresholds.index_bloat_ratio (default 30%) and thresholds.index_bloat_min_bytes."
    )

    def run(self, context: DbContext) -> Iterable[Finding]:
        t = context.thresholds
        stats = context.catalog.column_stats
        block = context.summary.block_size
        tables = context.catalog.tables_by_oid
        for idx in _comparable(context):
            table = tables.get(idx.table_oid)
            if idx.method != "btree" or table is None or idx.bytes < t.index_bloat_min_bytes:
                continue
            widths = self.key_widths(idx, stats)
            if widths is None:
                continue
            est = btree_estimate(idx.bytes, table.rows, widths, block, idx.fillfactor or 90)
            if est.bloat_ratio < t.index_bloat_ratio or est.bloat_bytes < t.index_bloat_min_bytes:
                continue
            yield self.finding(
                context,
                severity=Severity.warning,
                object=idx.qualified,
                columns=list(idx.key_defs),
                title=(
                    f"Index {idx.qualified} is about {est.bloat_ratio:.0%} bloat "
                    f"({human_bytes(est.bloat_bytes)} of {human_bytes(idx.bytes)})"
                ),
                detail=(
                    "Its size is well over what its entries need, so scans read more pages "
                    "and cache holds less. Estimated from planner statistics."
                ),
                evidence={
                    **_index_evidence(idx),
                    "expected_bytes": est.expected_bytes,
                    "bloat_bytes": est.bloat_bytes,
                    # a rebuild gives back the bloat, not the index
                    "bytes_freed": est.bloat_bytes,
                    "bloat_ratio": round(est.bloat_ratio, 3),
                    "table_rows": table.rows,
                },
                recommendation="Rebuild it without blocking writes.",
                fix_sql=f"REINDEX INDEX CONCURRENTLY {qualified(idx.schema, idx.name)};",
            )

    @staticmethod
    def key_widths(
        idx: Index, stats: Mapping[tuple[str, str], Mapping[str, ColumnStat]]
    ) -> list[ColumnWidth] | None:
        table_stats = stats.get((idx.schema, idx.table_name), {})
        index_stats = stats.get((idx.schema, idx.name), {})
        widths: list[ColumnWidth] = []
        for pos, attnum in enumerate(idx.attnums):
            # plain columns have table statistics under the column's name (not the quoted
            # text pg_get_indexdef gives); expression columns have statistics under the
            # index's own name, keyed by the index's column name
            if attnum:
                name = idx.attnames[pos] if pos < len(idx.attnames) else None
                stat = table_stats.get(name) if name is not None else None
            else:
                own = idx.index_attnames[pos] if pos < len(idx.index_attnames) else None
                stat = index_stats.get(own) if own is not None else None
            if stat is None:
                return None
            widths.append(ColumnWidth(stat.avg_width, stat.null_frac))
        return widths


_PARTITIONED_CREATE = (
    " It is a partitioned table, and PostgreSQL cannot build an index on one concurrently: "
    "the CREATE INDEX below blocks writes to every partition while it builds. To avoid that, "
    "CREATE INDEX ... ON ONLY the table, build the same index on each partition with CREATE "
    "INDEX CONCURRENTLY, then ALTER INDEX ... ATTACH PARTITION each one."
)


def _only_index_for_fk(idx: Index, context: DbContext) -> str | None:
    """The foreign key this index alone serves, if any: dropping it would make
    fk_without_index fire."""
    indexes = context.catalog.indexes_by_table.get(idx.table_oid, [])
    for fk in context.catalog.foreign_keys:
        if fk.table_oid != idx.table_oid:
            continue
        if ForeignKeyWithoutIndex.serving(fk.attnums, indexes) == [idx]:
            return fk.name
    return None


class ForeignKeyWithoutIndex(DbCheck):
    id = "fk_without_index"
    category = "indexes"
    summary = (
        "A foreign key whose referencing columns lead no valid, non-partial index, so every "
        "delete or key update on the referenced table scans the referencing table."
    )

    def run(self, context: DbContext) -> Iterable[Finding]:
        tables = context.catalog.tables_by_oid
        for fk in context.catalog.foreign_keys:
            if self._served(fk.attnums, context.catalog.indexes_by_table.get(fk.table_oid, [])):
                continue
            table = tables.get(fk.table_oid)
            parent = tables.get(fk.referenced_oid)
            parent_writes = (parent.n_tup_upd + parent.n_tup_del) if parent else 0
            partitioned = table is not None and table.partitioned
            size = (
                sum(p.heap_bytes for p in context.catalog.leaf_partitions(table.oid))
                if table is not None and partitioned
                else table.heap_bytes
                if table is not None
                else 0
            )
            big = size >= 1 << 20
            severity = Severity.warning if big or parent_writes else Severity.info
            cols = ", ".join(quote_ident(c) for c in fk.columns)
            # the same definition as the advisor's Candidate: one index, one name, one fix
            keys = tuple(quote_ident(c) for c in fk.columns)
            name = context.catalog.index_names.name(
                fk.schema, name_stem((fk.table_name, *fk.columns)), (fk.table_name, keys, ())
            )
            yield self.finding(
                context,
                severity=severity,
                object=fk.table,
                columns=list(fk.columns),
                key=(fk.name,),
                title=f"Foreign key {fk.name} on {fk.table}({', '.join(fk.columns)}) has no index",
                detail=(
                    f"Deleting or updating a key in {fk.referenced} must find referencing rows in "
                    f"{fk.table}; without an index on ({', '.join(fk.columns)}) each such change "
                    "scans the whole table, and joins on the key cannot use an index."
                ),
                evidence={
                    "constraint": fk.name,
                    "referenced_table": fk.referenced,
                    "table_bytes": table.heap_bytes if table else None,
                    "table_rows": table.rows if table else None,
                    "referenced_updates_deletes": parent_writes,
                    "on_delete": fk.on_delete,
                },
                recommendation=f"Index {fk.table}({', '.join(fk.columns)})."
                + (_PARTITIONED_CREATE if partitioned else ""),
                fix_sql=(
                    f"CREATE INDEX {'' if partitioned else 'CONCURRENTLY '}{quote_ident(name)} "
                    f"ON {qualified(fk.schema, fk.table_name)} ({cols});"
                ),
            )

    @staticmethod
    def serving(attnums: tuple[int, ...], indexes: list[Index]) -> list[Index]:
        """The indexes that serve a foreign key on these columns."""
        return [i for i in indexes if ForeignKeyWithoutIndex._served(attnums, [i])]

    @staticmethod
    def _served(attnums: tuple[int, ...], indexes: list[Index]) -> bool:
        want = set(attnums)
        for idx in indexes:
            if not idx.details_known:
                # cannot tell whether it is partial: assume it serves rather than cry wolf
                if idx.attnums[: len(attnums)] and set(idx.attnums[: len(attnums)]) == want:
                    return True
                continue
            if not idx.is_valid or idx.predicate is not None or idx.method != "btree":
                continue
            lead = idx.attnums[: len(attnums)]
            if len(lead) == len(attnums) and set(lead) == want and idx.key_count >= len(attnums):
                return True
        return False


CHECKS = [
    UnusedIndex(),
    DuplicateIndex(),
    RedundantIndex(),
    InvalidIndex(),
    IndexBloat(),
    ForeignKeyWithoutIndex(),
]

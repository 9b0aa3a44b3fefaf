"""partition_candidate: a plan to partition a large, growing table that the workload filters
by time or tenant; partition_health: what goes wrong with tables already partitioned."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import sql

from opscope.checks import CheckFailed, Skipped
from opscope.db.advisor.advise import resolve, table_columns
from opscope.db.advisor.predicates import TableUse, extract
from opscope.db.catalog import Table
from opscope.db.checks.base import DbCheck
from opscope.db.context import DbContext
from opscope.db.partitions.health import (
    HealthLimits,
    Partition,
    PartitionedTable,
    Problem,
    health,
)
from opscope.db.partitions.model import ColumnFacts, parse_bound, parse_moment
from opscope.db.partitions.proposal import (
    KeyUse,
    Limits,
    Proposal,
    range_proposal,
    tenant_proposal,
)
from opscope.db.partitions.workload import _plain, add_qualstats, key_uses, table_filters
from opscope.db.plans.explain import ExplainFailed, explain
from opscope.db.plans.vouch import ReadOnly
from opscope.db.settings import PartitionSettings
from opscope.db.statements import Statement
from opscope.findings import Finding, Severity
from opscope.sqltext import short_query
from opscope.units import human_bytes


def _statements(context: DbContext) -> tuple[Statement, ...]:
    try:
        return context.statements.statements
    except CheckFailed:
        return ()


def _columns(context: DbContext, oids: list[int]) -> dict[int, dict[str, ColumnFacts]]:
    out: dict[int, dict[str, ColumnFacts]] = {}
    for r in context.runner.fetch("partition_columns", {"oids": oids}):
        out.setdefault(int(r["table_oid"]), {})[str(r["column_name"])] = ColumnFacts(
            name=str(r["column_name"]),
            type=str(r["type"]),
            not_null=bool(r["not_null"]),
            n_distinct=r["n_distinct"],
            low=r["low"],
            high=r["high"],
            common_values=tuple(r["common_values"] or ()),
            common_shares=tuple(r["common_shares"] or ()),
        )
    return out


def _leading_index(context: DbContext, table: Table, column: str) -> bool:
    return any(
        idx.is_valid and idx.attnames[:1] == (column,)
        for idx in context.catalog.indexes_by_table.get(table.oid, [])
    )


def _time_range(
    context: DbContext, table: Table, key: ColumnFacts
) -> tuple[datetime | None, datetime | None, str]:
    """The key's first and last values: exact when an index leads with it (two index
    probes), else the planner's histogram (a sample: the first partitions may miss a few
    older rows, which land in the default partition)."""
    if _leading_index(context, table, key.name):
        query = sql.SQL(
            "SELECT /* opscope */ extract(epoch FROM min({c}))::float8 AS low, "
            "extract(epoch FROM max({c}))::float8 AS high FROM {s}.{t}"
        ).format(
            c=sql.Identifier(key.name), s=sql.Identifier(table.schema), t=sql.Identifier(table.name)
        )
        [row] = context.runner.fetch_query(query)
        if row["low"] is not None and row["high"] is not None:
            return (
                datetime.fromtimestamp(float(row["low"]), UTC),
                datetime.fromtimestamp(float(row["high"]), UTC),
                "min and max",
            )
    return parse_moment(key.low), parse_moment(key.high), "the planner's histogram"


def _partman(context: DbContext) -> tuple[str, str] | None:
    rows = context.runner.fetch("partition_extensions")
    return (str(rows[0]["schema"]), str(rows[0]["version"])) if rows else None


def _tenant_key(
    uses: Mapping[str, KeyUse], columns: Mapping[str, ColumnFacts], rows: float, share: float
) -> KeyUse | None:
    keys = []
    for use in uses.values():
        facts = columns.get(use.column)
        if facts is None or facts.is_time or use.share < share:
            continue
        distinct = facts.distinct_values(rows)
        # a key every statement gives, with values each shared by many rows (an id is not)
        if distinct is not None and 2 <= distinct <= rows / 10:
            keys.append(use)
    return max(keys, key=lambda u: u.share, default=None)


class PartitionCandidate(DbCheck):
    id = "partition_candidate"
    category = "tables"
    summary = (
        "A table of at least partitioning.min_table_bytes that is growing and whose workload "
        "(pg_stat_statements, pg_qualstats) filters at least partitioning.workload_share of "
        "its calls on a time column (range partitions) or a tenant key (list or hash): the "
        "key, partitions and sizes, constraints to change, DDL, a migration with its locks."
    )

    def run(self, context: DbContext) -> Iterable[Finding | Skipped]:
        return list(self._findings(context))

    def _findings(self, context: DbContext) -> Iterator[Finding]:
        t = context.settings.partitioning
        catalog = context.catalog
        big = [
            tb
            for tb in catalog.tables
            if tb.kind == "r" and tb.parent_oid is None and tb.total_bytes >= t.min_table_bytes
        ]
        if not big:
            return
        tables = {tb.qualified: tb for tb in catalog.tables}
        tallies = table_filters(_statements(context), tables, table_columns(catalog))
        oids = [tb.oid for tb in big]
        if catalog.summary.has_pg_qualstats:
            names = {tb.oid: tb.qualified for tb in big}
            add_qualstats(
                tallies,
                context.runner.fetch("partition_quals", {"oids": oids}),
                names,
                context.now,
            )
        facts = _columns(context, oids)
        partman: tuple[str, str] | bool | None = False
        for table in big:
            tally = tallies.get(table.qualified)
            if tally is None:
                continue  # no statement reads it by any column: nothing to prune for
            uses = key_uses(tally)
            columns = facts.get(table.oid, {})
            time_keys = [
                u
                for u in uses.values()
                if u.ranges
                and u.share >= t.workload_share
                and u.column in columns
                and columns[u.column].is_time
            ]
            if partman is False:
                partman = _partman(context)
            found: Proposal | None = None
            evidence: dict[str, Any] = {}
            if time_keys:
                use = max(time_keys, key=lambda u: (u.retention, u.share))
                found, evidence = self._by_time(
                    context, table, columns[use.column], use, t, partman
                )
            else:
                tenant = _tenant_key(uses, columns, table.rows, t.workload_share)
                if tenant is not None and self._growing(context, table):
                    use = tenant
                    found = tenant_proposal(
                        schema=table.schema,
                        name=table.name,
                        key=columns[tenant.column],
                        use=tenant,
                        rows=table.rows,
                        total_bytes=table.total_bytes,
                        indexes=catalog.indexes_by_table.get(table.oid, []),
                        taken=catalog.relation_names,
                        limits=_limits(t),
                    )
            if found is None:
                continue
            yield self._finding(context, table, found, use, evidence)

    def _growing(self, context: DbContext, table: Table) -> bool:
        prev = context.history.previous.get(table.qualified) if context.history else None
        return table.n_tup_ins > 0 or (prev is not None and table.rows > prev.rows)

    def _by_time(
        self,
        context: DbContext,
        table: Table,
        key: ColumnFacts,
        use: KeyUse,
        t: PartitionSettings,
        partman: tuple[str, str] | bool | None,
    ) -> tuple[Proposal | None, dict[str, Any]]:
        first, last, measured = _time_range(context, table, key)
        now = context.now
        if first is None or last is None or last < first:
            return None, {}
        span_days = max((last - first).total_seconds() / 86400, 1.0)
        rows_per_day = table.rows / span_days
        evidence: dict[str, Any] = {
            "first_value": first.isoformat(),
            "last_value": last.isoformat(),
            "values_from": measured,
        }
        stats_days = context.summary.stats_age_days
        if stats_days > 0:
            evidence["inserts_per_day"] = round(table.n_tup_ins / stats_days)
        prev = context.history.previous.get(table.qualified) if context.history else None
        if prev is not None:
            days = (now - prev.taken_at).total_seconds() / 86400
            if days > 0:
                evidence["history_rows_per_day"] = round((table.rows - prev.rows) / days)
        # the values run up to now, or rows keep arriving: the table grows
        recent = last >= now - timedelta(days=2)
        if not (recent or table.n_tup_ins > 0 or (prev is not None and table.rows > prev.rows)):
            return None, {}
        rate_source = (
            f"the {key.name} values: {table.rows:,.0f} rows from {first:%Y-%m-%d} to "
            f"{last:%Y-%m-%d} ({measured})"
        )
        proposal = range_proposal(
            schema=table.schema,
            name=table.name,
            key=key,
            use=use,
            first=first,
            now=max(now, last),
            rows=table.rows,
            total_bytes=table.total_bytes,
            rows_per_day=rows_per_day,
            rate_source=rate_source,
            indexes=context.catalog.indexes_by_table.get(table.oid, []),
            taken=context.catalog.relation_names,
            limits=_limits(t),
            partman=partman if isinstance(partman, tuple) else None,
        )
        return proposal, evidence

    def _finding(
        self,
        context: DbContext,
        table: Table,
        p: Proposal,
        use: KeyUse,
        evidence: dict[str, Any],
    ) -> Finding:
        sizes = [s.expected_bytes for s in p.partitions]
        typical = sorted(sizes)[len(sizes) // 2] if sizes else 0.0
        how = f"range of {p.key} by {p.interval.name}" if p.interval else f"{p.strategy} of {p.key}"
        steps = "\n".join(
            f"{n}. {s.title}"
            + (f" Locks: {s.locks}." if s.locks else "")
            + (f"\n{s.sql}" if s.sql else "")
            for n, s in enumerate(p.migration, start=1)
        )
        constraints = "".join(
            f" The {c.kind} {c.index} ({', '.join(c.columns)}) must become "
            f"({', '.join(c.becomes)}): uniqueness is enforced per partition."
            for c in p.constraints
        )
        partman = (
            f"\n\npg_partman is installed; it can make and drop the partitions:\n{p.partman}"
            if p.partman
            else ""
        )
        return self.finding(
            context,
            severity=Severity.warning if use.retention else Severity.info,
            object=table.qualified,
            columns=[p.key],
            title=(
                f"Partition {table.qualified} by {how}: {p.partition_count} partitions of about "
                f"{human_bytes(int(typical))}"
            ),
            detail=(
                f"{human_bytes(table.total_bytes)}, ~{table.rows:,.0f} rows; "
                f"{use.share:.0%} of its statement calls filter on {p.key}"
                + (" and a DELETE removes rows by it" if use.retention else "")
                + ". "
                + "; ".join(p.reasons)
                + (f". Rate from {p.rate_source}." if p.rate_source else ".")
                + constraints
            ),
            recommendation=(
                "Create the partitioned table beside it (the DDL below touches nothing of "
                f"the table), then migrate:\n{steps}{partman}"
            ),
            fix_sql=p.ddl,
            evidence={
                "key": p.key,
                "key_type": p.key_type,
                "strategy": p.strategy,
                "interval": p.interval.name if p.interval else None,
                "partitions": p.partition_count,
                "partition_names": [s.name for s in p.partitions],
                "expected_partition_rows": round(
                    sorted(s.expected_rows for s in p.partitions)[len(sizes) // 2]
                )
                if sizes
                else 0,
                "expected_partition_bytes": round(typical),
                "new_table": f"{table.schema}.{p.new_name}",
                "rows_per_day": None if p.rows_per_day is None else round(p.rows_per_day),
                "key_share": round(use.share, 4),
                "key_sources": list(use.sources),
                "retention": use.retention,
                "query_days": None if use.query_days is None else round(use.query_days, 2),
                "constraints": [
                    {
                        "index": c.index,
                        "kind": c.kind,
                        "columns": list(c.columns),
                        "becomes": list(c.becomes),
                    }
                    for c in p.constraints
                ],
                "migration": [
                    {"step": s.title, "sql": s.sql, "locks": s.locks} for s in p.migration
                ],
                "partman": p.partman,
                "attach_before": p.attach_before.isoformat() if p.attach_before else None,
                "total_bytes": table.total_bytes,
                **evidence,
            },
        )


def _limits(t: PartitionSettings) -> Limits:
    return Limits(
        min_partition_rows=t.min_partition_rows,
        max_partitions=t.max_partitions,
        max_partition_bytes=t.max_partition_bytes,
        premake=t.premake,
    )


def partitioned_tables(context: DbContext) -> list[PartitionedTable]:
    by_oid = context.catalog.tables_by_oid
    out: dict[int, PartitionedTable] = {}
    for r in context.runner.fetch("partition_bounds"):
        parent = by_oid.get(int(r["parent_oid"]))
        if parent is None:
            continue
        pt = out.setdefault(
            parent.oid,
            PartitionedTable(
                parent,
                str(r["strategy"]),
                tuple(r["key_columns"] or ()),
                tuple(r["key_types"] or ()),
            ),
        )
        child = by_oid.get(int(r["partition_oid"])) if r["partition_oid"] is not None else None
        bound = parse_bound(r["bound"])
        if child is not None and bound is not None:
            pt.partitions.append(Partition(child, bound))
    # sub-partitioned tables: a parent's size is its leaves'
    return list(out.values())


class PartitionHealth(DbCheck):
    id = "partition_health"
    category = "tables"
    summary = (
        "A partitioned table whose range partitions end within partitioning.runway_days, whose "
        "default partition keeps growing, that has far too many partitions (over "
        "partitioning.max_partitions, or a median under partitioning.min_partition_bytes) or "
        "far too few (one of partitioning.max_partition_bytes or more holding nearly all), or "
        "whose top statements' plans scan every partition (no pruning)."
    )

    def run(self, context: DbContext) -> Iterable[Finding | Skipped]:
        return list(self._findings(context))

    def _findings(self, context: DbContext) -> Iterator[Finding | Skipped]:
        t = context.settings.partitioning
        tables = partitioned_tables(context)
        if not tables:
            return
        limits = HealthLimits(
            runway_days=t.runway_days,
            premake=t.premake,
            max_partitions=t.max_partitions,
            min_partition_bytes=t.min_partition_bytes,
            max_partition_bytes=t.max_partition_bytes,
        )
        taken: dict[str, set[str]] = {}
        for schema, name in context.catalog.relation_names:
            taken.setdefault(schema, set()).add(name)
        history = context.history.previous if context.history else {}
        for pt in tables:
            # a sub-partitioned level is judged by its own partitions, the leaves by size
            if pt.parent.parent_oid is not None and not pt.partitions:
                continue
            default = pt.default
            prev = history.get(default.table.qualified) if default is not None else None
            days = (context.now - prev.taken_at).total_seconds() / 86400 if prev else None
            problems = health(
                pt,
                context.now,
                limits,
                taken.setdefault(pt.parent.schema, set()),
                prev.rows if prev else None,
                days,
            )
            for problem in problems:
                yield self._finding(context, pt, problem)
        yield from self._no_pruning(context, tables, t)

    def _finding(self, context: DbContext, pt: PartitionedTable, p: Problem) -> Finding:
        return self.finding(
            context,
            severity=p.severity,
            object=pt.parent.qualified,
            key=(p.kind, p.evidence.get("queryid", "")),
            columns=list(pt.key_columns),
            title=p.title,
            detail=p.detail,
            recommendation=p.recommendation,
            fix_sql=p.fix_sql,
            evidence=p.evidence,
        )

    def _no_pruning(
        self, context: DbContext, tables: list[PartitionedTable], t: PartitionSettings
    ) -> Iterator[Finding | Skipped]:
        statements = sorted(
            (s for s in _statements(context) if s.toplevel and s.calls > 0),
            key=lambda s: -s.total_exec_time,
        )
        catalog = context.catalog
        by_name = {tb.qualified: tb for tb in catalog.tables}
        parents = {pt.parent.qualified: pt for pt in tables if len(pt.partitions) >= 2}
        if not parents or not statements:
            return
        columns = table_columns(catalog)
        tallies_seen = 0
        read_only = ReadOnly(context.plans.read_only_functions, context.plans.read_only_extensions)

        def columns_of(schema: str | None, table: str) -> frozenset[str] | None:
            rel = resolve(TableUse(schema, table), by_name)
            return frozenset(columns.get(rel, ())) if rel else None

        for s in statements:
            if tallies_seen >= t.review_statements:
                break
            for use in extract(s.query, columns_of):
                rel = resolve(use, by_name)
                pt = parents.get(rel or "")
                if pt is None:
                    continue
                filtered = _plain(use.equality) | _plain(use.ranges)
                if set(pt.key_columns) & filtered:
                    continue  # the planner (or the executor, for $n) can prune
                tallies_seen += 1
                try:
                    plan = explain(
                        context.runner.conn, s.query, analyze=False, read_only=read_only
                    ).plan
                except ExplainFailed as exc:
                    yield Skipped(f"partition_health: could not plan queryid {s.queryid}: {exc}")
                    continue
                leaves = {p.table.qualified for p in pt.partitions if not p.table.partitioned}
                scanned = plan.root.relations() & leaves
                if len(leaves) < 2 or scanned != leaves:
                    continue
                yield self._finding(
                    context,
                    pt,
                    Problem(
                        kind="no_pruning",
                        severity=Severity.warning,
                        title=(
                            f"{pt.parent.qualified}: a statement scans all {len(leaves)} "
                            f"partitions: {short_query(s.query, 60)}"
                        ),
                        detail=(
                            f"It does not filter on {', '.join(pt.key_columns)} itself, so no "
                            f"partition is pruned: its {s.calls} calls read every one "
                            f"({s.mean_exec_time:.1f} ms on average)."
                        ),
                        recommendation=(
                            f"Filter on {', '.join(pt.key_columns)} directly (a range or "
                            "equality on the column, not on an expression of it such as "
                            "date_trunc), so the planner prunes; or partition by what this "
                            "statement filters on."
                        ),
                        evidence={
                            "problem": "no_pruning",
                            "queryid": s.queryid,
                            "query": s.query,
                            "calls": s.calls,
                            "mean_ms": round(s.mean_exec_time, 3),
                            "partitions_scanned": len(scanned),
                            "partitions": len(leaves),
                        },
                    ),
                )


CHECKS = [PartitionCandidate(), PartitionHealth()]

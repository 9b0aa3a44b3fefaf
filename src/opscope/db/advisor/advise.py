"""The advisor's run: workload -> predicates -> candidates -> hypopg costing -> chosen set.

Bounded so it can run inside `opscope analyze db`: the top `statements` by total time, at
most `max_candidates` candidates (the ones on the tables that cost the workload most go
first) and a time budget after which the costing stops and the result says it is partial.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import psycopg

from opscope.db.advisor.candidates import (
    Candidate,
    already_indexed,
    candidates_for_use,
    reordering_of,
)
from opscope.db.advisor.fallback import advise_unverified
from opscope.db.advisor.hypo import Costed, HypoSession, HypoUnavailable, try_cost
from opscope.db.advisor.model import (
    KEEP_PROTECTED,
    KEEP_SCANNED,
    KEEP_USED,
    OTHER_SCANS_SHARE,
    AdvisorResult,
    Effect,
    Recommendation,
    WorkloadStatement,
)
from opscope.db.advisor.planned import merge, plan_uses
from opscope.db.advisor.predicates import TableUse, extract
from opscope.db.advisor.select import Option, choose, window_scale, write_penalty
from opscope.db.catalog import Catalog, Index, Summary, Table
from opscope.db.plans.explain import ExplainFailed, explain
from opscope.db.plans.samples import Sample
from opscope.db.settings import AdvisorSettings
from opscope.db.statements import Statement, StatementSnapshot, is_maintenance
from opscope.sqltext import quote_ident

#: cost the workload with hypothetical indexes for these candidates in place: the name of
#: each candidate's hypothetical index, in order, and statement key -> its costing (None
#: when it could not be planned) for every statement on a table of the candidates
SetCoster = Callable[[Sequence[Candidate]], tuple[list[str], dict[int, Costed | None]]]


def statements_window(snapshot: StatementSnapshot, summary: Summary) -> float | None:
    """Seconds the statement counters cover: a diff's window, else since
    pg_stat_statements was last reset (None when the server does not say)."""
    if snapshot.window_s is not None:
        return snapshot.window_s
    if snapshot.stats_reset is None:
        return None
    return max((summary.now - snapshot.stats_reset).total_seconds(), 0.0)


def write_windows(
    catalog: Catalog, statements_s: float | None, min_window_s: float = 0.0
) -> dict[str, float | str | None]:
    """The windows writes and savings are compared over, and the rate used for writes.

    The table counters hold the writes since the statistics were reset (or the server
    started); a bulk load just after a reset would make them look like a rate of thousands
    a second and decline every index, so they are taken as a rate over at least
    `min_window_s`."""
    summary = catalog.summary
    table_s = max((summary.now - summary.stats_since).total_seconds(), 0.0)
    write_s = max(table_s, min_window_s)
    # unknown statements window: taken to be the table statistics' own
    statements_s = table_s if statements_s is None else statements_s
    if write_s > table_s:
        rate = (
            f"writes are weighed as a rate over {human_seconds(write_s)}: the table counters "
            f"are {human_seconds(table_s)} old, too young to tell a bulk load from steady "
            "writes (advisor.write_rate_min_window_s)"
        )
    else:
        rate = f"writes are weighed as the rate of the table counters over {human_seconds(table_s)}"
    return {
        "statements_s": round(statements_s, 1),
        "table_stats_s": round(table_s, 1),
        "write_window_s": round(write_s, 1),
        "scale": window_scale(statements_s, write_s),
        "write_rate": rate,
    }


def human_seconds(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def table_columns(catalog: Catalog) -> dict[str, tuple[str, ...]]:
    rows = catalog.runner.fetch("table_columns")
    return {f"{r['schema']}.{r['table_name']}": tuple(r["columns"]) for r in rows}


def selectivities(catalog: Catalog) -> dict[str, dict[str, float]]:
    """schema.table -> column -> share of the rows one value matches (planner statistics)."""
    rows_of = {t.qualified: t.rows for t in catalog.tables}
    out: dict[str, dict[str, float]] = {}
    for r in catalog.runner.fetch("column_selectivity"):
        rel = f"{r['schema']}.{r['table_name']}"
        nd = float(r["n_distinct"] or 0)
        distinct = nd if nd > 0 else -nd * max(rows_of.get(rel, 0.0), 1.0)
        out.setdefault(rel, {})[str(r["column_name"])] = 1.0 / distinct if distinct >= 1 else 1.0
    return out


def resolve(use: TableUse, tables: Mapping[str, Table]) -> str | None:
    if use.schema is not None:
        rel = f"{use.schema}.{use.table}"
        return rel if rel in tables else None
    if f"public.{use.table}" in tables:
        return f"public.{use.table}"
    matches = [q for q, t in tables.items() if t.name == use.table]
    return matches[0] if len(matches) == 1 else None


def build_workload(
    statements: Iterable[Statement],
    tables: Mapping[str, Table],
    columns: Mapping[str, tuple[str, ...]],
    examples: Mapping[int, Sample],
    settings: AdvisorSettings,
    keep_unresolved: bool = False,
) -> list[WorkloadStatement]:
    """The top statements with their table uses as the text shows them; with
    `keep_unresolved`, also those whose text names no table of the catalog (a view, a CTE),
    for the plan to tell (`with_plan_uses`)."""

    def columns_of(schema: str | None, table: str) -> frozenset[str] | None:
        rel = resolve(TableUse(schema, table), tables)
        return frozenset(columns.get(rel, ())) if rel else None

    chosen = sorted(
        (s for s in statements if s.toplevel and s.calls > 0 and not is_maintenance(s.query)),
        key=lambda s: -s.total_exec_time,
    )[: settings.statements]
    out: list[WorkloadStatement] = []
    for s in chosen:
        # the example carries the constants that expressions such as date_trunc('day', ..)
        # need; the normalized text has $n in their place
        sample = examples.get(s.queryid)
        text, params = s.query, None
        if "$" in s.query and sample is not None and sample.complete:
            text, params = sample.text, sample.params
        uses = extract(text, columns_of)
        if not uses and text != s.query:
            text, params, uses = s.query, None, extract(s.query, columns_of)
        resolved = [(u, resolve(u, tables)) for u in uses]
        kept = [(u, r) for u, r in resolved if r is not None]
        if not kept and not keep_unresolved:
            continue
        out.append(
            WorkloadStatement(
                key=len(out),
                queryid=s.queryid,
                query=s.query,
                text=text,
                params=params,
                calls=s.calls,
                mean_ms=s.mean_exec_time,
                total_ms=s.total_exec_time,
                rows=s.rows,
                uses=tuple(u for u, _ in kept),
                relations=tuple(r for _, r in kept),
            )
        )
    return out


def top_relation(catalog: Catalog) -> Callable[[str], str | None]:
    """schema.name -> the schema.name of its top partitioned table (itself when it is not a
    partition); None for a relation the catalog does not hold (a view, a system table)."""
    by_name = {t.qualified: t for t in catalog.tables}
    by_oid = catalog.tables_by_oid

    def top(relation: str) -> str | None:
        table = by_name.get(relation)
        while table is not None and table.parent_oid is not None:
            parent = by_oid.get(table.parent_oid)
            if parent is None:
                break
            table = parent
        return table.qualified if table is not None else None

    return top


def with_plan_uses(
    conn: psycopg.Connection[Any], workload: Sequence[WorkloadStatement], catalog: Catalog
) -> list[WorkloadStatement]:
    """Each statement's uses with what its plan adds (planned.py: views, inlined CTEs,
    ORDER BY 1 and aliases, partitions as their partitioned table); statements that still
    use no table of the catalog are left out."""
    top = top_relation(catalog)
    out: list[WorkloadStatement] = []
    for w in workload:
        uses = [copy.deepcopy(u) for u in w.uses]
        relations = list(w.relations)
        try:
            plan = explain(conn, w.text, analyze=False, params=w.params).plan
        except ExplainFailed:
            plan = None
        if plan is not None:
            for use in plan_uses(plan, top):
                rel = f"{use.schema}.{use.table}"
                if rel in relations:
                    merge(uses[relations.index(rel)], use)
                else:
                    uses.append(use)
                    relations.append(rel)
        if uses:
            out.append(replace(w, key=len(out), uses=tuple(uses), relations=tuple(relations)))
    return out


def sized_tables(conn: psycopg.Connection[Any], catalog: Catalog) -> dict[str, Table]:
    """The catalog's tables as the advisor weighs them: a partitioned table with its leaves'
    rows and write counters (it has none of its own), and a relation never analyzed whose
    counters were reset (a materialized view: reltuples -1, no live tuples counted) with the
    rows the planner estimates from its pages, not as empty."""
    out: dict[str, Table] = {}
    for t in catalog.tables:
        if t.partitioned:
            leaves = catalog.leaf_partitions(t.oid)
            t = replace(
                t,
                reltuples=sum(max(p.rows, 0.0) for p in leaves),
                n_tup_ins=sum(p.n_tup_ins for p in leaves),
                n_tup_upd=sum(p.n_tup_upd for p in leaves),
                n_tup_del=sum(p.n_tup_del for p in leaves),
                n_tup_hot_upd=sum(p.n_tup_hot_upd for p in leaves),
            )
        elif t.reltuples < 0 and t.n_live_tup == 0 and t.heap_bytes > 0:
            query = f"SELECT * FROM ONLY {quote_ident(t.schema)}.{quote_ident(t.name)}"  # noqa: S608 - quoted names, planned only
            try:
                rows = explain(conn, query, analyze=False).plan.root.plan_rows
            except ExplainFailed:
                rows = 0.0
            t = replace(t, reltuples=rows)
        out[t.qualified] = t
    return out


def generate(
    workload: Sequence[WorkloadStatement],
    tables: Mapping[str, Table],
    indexes: Mapping[int, list[Index]],
    columns: Mapping[str, tuple[str, ...]],
    selectivity: Mapping[str, Mapping[str, float]],
    settings: AdvisorSettings,
    partitions_of: Callable[[Table], tuple[tuple[str, str], ...]] = lambda _: (),
) -> list[Candidate]:
    out: dict[Candidate, None] = {}
    for w in workload:
        for use, rel in zip(w.uses, w.relations, strict=True):
            table = tables[rel]
            if table.rows < settings.min_table_rows:
                continue
            for c in candidates_for_use(
                use,
                table.schema,
                selectivity=selectivity.get(rel, {}),
                all_columns=columns.get(rel, ()),
                max_include=settings.max_include,
            ):
                if already_indexed(c, indexes.get(table.oid, [])):
                    continue
                if table.partitioned:
                    c = replace(c, partitions=partitions_of(table))
                if _too_broad(c, use, selectivity.get(rel, {}), settings.max_equality_share):
                    continue
                out.setdefault(c, None)
    return list(out)


def _too_broad(
    cand: Candidate, use: TableUse, selectivity: Mapping[str, float], limit: float
) -> bool:
    equality = {k.expr for k in use.equality}
    if any(k.is_expression or k.expr not in equality for k in cand.keys):
        return False
    share = 1.0
    for k in cand.keys:
        share *= selectivity.get(k.expr, 0.0)
    return share > limit


def advise(
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    statements: Iterable[Statement],
    *,
    examples: Mapping[int, Sample] | None = None,
    settings: AdvisorSettings | None = None,
    clock: Callable[[], float] = time.monotonic,
    statements_window_s: float | None = None,
) -> AdvisorResult:
    """`statements_window_s`: seconds the statement counters cover (`statements_window`);
    None takes them to cover the table statistics' window."""
    settings = settings or AdvisorSettings()
    windows = write_windows(catalog, statements_window_s, settings.write_rate_min_window_s)
    scale = float(windows["scale"] or 1.0)
    tables = sized_tables(conn, catalog)
    columns = table_columns(catalog)
    selectivity = selectivities(catalog)
    workload = build_workload(
        statements, tables, columns, examples or {}, settings, keep_unresolved=True
    )
    workload = with_plan_uses(conn, workload, catalog)
    candidates = generate(
        workload,
        tables,
        catalog.indexes_by_table,
        columns,
        selectivity,
        settings,
        lambda t: tuple((p.schema, p.name) for p in catalog.leaf_partitions(t.oid)),
    )
    if not catalog.summary.has_hypopg:
        result = advise_unverified(workload, candidates, tables, selectivity, settings)
    else:
        try:
            result = _advise_hypo(
                conn,
                catalog,
                workload,
                candidates,
                tables,
                settings,
                clock,
                scale,
            )
        except HypoUnavailable:
            result = advise_unverified(workload, candidates, tables, selectivity, settings)
    result.recommendations = named(result.recommendations, catalog)
    result.write_windows = windows
    return result


def named(recommendations: Sequence[Recommendation], catalog: Catalog) -> list[Recommendation]:
    """Give each recommendation an index name no relation of its schema has yet, nor any
    other index this run proposes (the catalog's IndexNames, shared with fk_without_index)."""
    names = catalog.index_names
    out: list[Recommendation] = []
    for rec in recommendations:
        cand = rec.candidate
        name = names.name(cand.schema, cand.name_stem(), cand.definition)
        out.append(replace(rec, index_name=name))
    return out


def _advise_hypo(
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    workload: list[WorkloadStatement],
    candidates: list[Candidate],
    tables: Mapping[str, Table],
    settings: AdvisorSettings,
    clock: Callable[[], float],
    scale: float,
) -> AdvisorResult:
    started = clock()
    result = AdvisorResult(workload=workload, candidates=len(candidates))
    leaves = {t.qualified: catalog.leaf_partitions(t.oid) for t in catalog.tables if t.partitioned}
    with HypoSession(conn, leaves) as hs:
        baseline: dict[int, float] = {}
        baseline_indexes: dict[int, frozenset[str]] = {}
        for w in workload:
            costed = try_cost(hs, w.text, w.params)
            if costed is None:
                result.notes.append(f"could not plan query {w.queryid}; left out")
            else:
                baseline[w.key] = costed.cost
                baseline_indexes[w.key] = costed.indexes
        planned = [w for w in workload if w.key in baseline]
        on_table: dict[str, list[WorkloadStatement]] = {}
        for w in planned:
            for rel in set(w.relations):
                on_table.setdefault(rel, []).append(w)
        # costliest tables first, so a time budget cuts the least valuable candidates
        weight = {rel: sum(baseline[w.key] * w.calls for w in ws) for rel, ws in on_table.items()}
        candidates = sorted(candidates, key=lambda c: -weight.get(c.relation, 0.0))
        if len(candidates) > settings.max_candidates:
            result.partial = True
            candidates = candidates[: settings.max_candidates]
        options: list[Option] = []
        for cand in candidates:
            if clock() - started > settings.time_budget_s:
                result.partial = True
                result.notes.append(
                    f"time budget of {settings.time_budget_s:g} s reached after "
                    f"{result.costed} candidates"
                )
                break
            affected = on_table.get(cand.relation, [])
            if not affected:
                continue
            option = _cost_candidate(hs, cand, affected, baseline, catalog, tables, settings, scale)
            result.costed += 1
            if option is not None:
                options.append(option)
        chosen = choose(
            options,
            baseline,
            {w.key: w.calls for w in planned},
            max_indexes=settings.max_indexes,
            min_improvement=settings.min_improvement,
        )
        indexes = {t.qualified: catalog.indexes_by_table.get(t.oid, []) for t in catalog.tables}
        result.recommendations = verify_together(
            [c.option for c in chosen],
            planned,
            baseline,
            baseline_indexes,
            indexes,
            cost_set(hs, planned),
        )
        result.explains = hs.explains
    return result


def _cost_candidate(
    hs: HypoSession,
    cand: Candidate,
    affected: Sequence[WorkloadStatement],
    baseline: Mapping[int, float],
    catalog: Catalog,
    tables: Mapping[str, Table],
    settings: AdvisorSettings,
    scale: float,
) -> Option | None:
    try:
        hypo = hs.create(cand)
    except psycopg.Error:
        return None  # hypopg refused it (a volatile expression, a bad operator class)
    try:
        size = hs.size(hypo)
        costs: dict[int, float] = {}
        for w in affected:
            costed = try_cost(hs, w.text, w.params)
            used = costed is not None and hypo.name in costed.indexes
            if costed is not None and used and costed.cost < baseline[w.key]:
                costs[w.key] = costed.cost
    finally:
        hs.drop(hypo)
    if not costs:
        return None
    table = tables[cand.relation]
    return Option(cand, costs, size, _penalty(cand, table, affected, catalog, settings, scale))


def _penalty(
    cand: Candidate,
    table: Table,
    workload: Sequence[WorkloadStatement],
    catalog: Catalog,
    settings: AdvisorSettings,
    scale: float,
) -> float:
    touching = 0
    for w in workload:
        for use, rel in zip(w.uses, w.relations, strict=True):
            if rel == cand.relation and use.updated & cand.columns:
                touching += w.rows
    return write_penalty(
        cand,
        table,
        updates_touching=touching,
        existing_indexes=len(catalog.indexes_by_table.get(table.oid, [])),
        cost_per_row=settings.write_cost_per_row,
        scale=scale,
    )


def cost_set(hs: HypoSession, workload: Sequence[WorkloadStatement]) -> SetCoster:
    """Costing of a candidate set with hypopg: all of them in place at once, as built."""

    def cost(cands: Sequence[Candidate]) -> tuple[list[str], dict[int, Costed | None]]:
        hypos = []
        try:
            for c in cands:
                hypos.append(hs.create(c))
            final: dict[int, Costed | None] = {}
            for w in workload:
                if any(c.relation in w.relations for c in cands):
                    final[w.key] = try_cost(hs, w.text, w.params)
        finally:
            for h in hypos:
                hs.drop(h)
        return [h.name for h in hypos], final

    return cost


def verify_together(
    options: Sequence[Option],
    workload: Sequence[WorkloadStatement],
    baseline: Mapping[int, float],
    baseline_indexes: Mapping[int, frozenset[str]],
    indexes: Mapping[str, Sequence[Index]],
    cost: SetCoster,
    *,
    rounds: int = 3,
) -> list[Recommendation]:
    """Cost the chosen set at once, as it would be built: the per-statement costs reported
    are these, and an index the others make useless is dropped from the set.

    `indexes` maps schema.table to its existing indexes; `baseline_indexes` holds the
    indexes each statement's plan uses today."""
    todo = list(options)
    names, final = cost([o.candidate for o in todo]) if todo else ([], {})
    for _ in range(rounds):
        used = [any(c is not None and n in c.indexes for c in final.values()) for n in names]
        if all(used):
            break
        todo = [o for o, u in zip(todo, used, strict=True) if u]
        # costed again without the useless ones: names and costs always describe `todo`
        names, final = cost([o.candidate for o in todo]) if todo else ([], {})
    by_key = {w.key: w for w in workload}
    recs: list[Recommendation] = []
    for opt, name in zip(todo, names, strict=True):
        effects = []
        for key, costed in final.items():
            if costed is not None and name in costed.indexes:
                effects.append(Effect(by_key[key], baseline[key], costed.cost))
        if not effects:
            continue
        effects.sort(key=lambda e: -(e.cost_before - e.cost_after) * e.statement.calls)
        saving = sum((e.cost_before - e.cost_after) * e.statement.calls for e in effects)
        rel = opt.candidate.relation
        replaced = reordering_of(opt.candidate, indexes.get(rel, ()))
        keep: str | None = None
        elsewhere = 0
        if replaced is not None:
            # one scan per call of each studied statement whose plan uses it today
            explained = sum(
                by_key[k].calls for k, used in baseline_indexes.items() if replaced.name in used
            )
            calls = sum(w.calls for w in workload if w.key in baseline and rel in w.relations)
            elsewhere = max(replaced.idx_scan - explained, 0)
            if replaced.protected:
                keep = KEEP_PROTECTED
            elif any(c is not None and replaced.name in c.indexes for c in final.values()):
                keep = KEEP_USED
            elif elsewhere > OTHER_SCANS_SHARE * calls:
                keep = KEEP_SCANNED
        recs.append(
            Recommendation(
                candidate=opt.candidate,
                effects=tuple(effects),
                saving=saving,
                write_penalty=opt.write_penalty,
                size_bytes=opt.size_bytes,
                replaces=replaced,
                drop_replaced=replaced is not None and keep is None,
                keep_reason=keep,
                replaced_scans_elsewhere=elsewhere,
            )
        )
    recs.sort(key=lambda r: -(r.saving - r.write_penalty))
    return recs

"""Without hypopg: rank candidates by the planner's column statistics, unverified.

Nothing is costed by the planner here. A candidate is kept when its equality keys, taken as
independent, match at most `MAX_SHARE` of the table's rows (pg_stats n_distinct), and ranked
by the pages a lookup would no longer read, times calls. Findings made this way say
"unverified" in their title and carry ``verified: false`` in their evidence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opscope.db.advisor.candidates import Candidate
from opscope.db.advisor.model import (
    AdvisorResult,
    Effect,
    Recommendation,
    WorkloadStatement,
)
from opscope.db.catalog import Table
from opscope.db.settings import AdvisorSettings

#: a lookup must match at most this share of the rows to be worth an index
MAX_SHARE = 0.05
#: what one range condition is assumed to keep (PostgreSQL's own default for ranges is 1/3;
#: a workload that bothers to filter by range usually keeps much less)
RANGE_SHARE = 0.1


def estimated_share(
    candidate: Candidate, use_equality: set[str], selectivity: Mapping[str, float]
) -> float | None:
    share = 1.0
    for key in candidate.keys:
        if key.is_expression:
            return None  # no statistics for an expression nobody has indexed yet
        if key.expr in use_equality:
            share *= selectivity.get(key.expr, 1.0)
        else:
            share *= RANGE_SHARE
    return share


def advise_unverified(
    workload: Sequence[WorkloadStatement],
    candidates: Sequence[Candidate],
    tables: Mapping[str, Table],
    selectivity: Mapping[str, Mapping[str, float]],
    settings: AdvisorSettings,
) -> AdvisorResult:
    result = AdvisorResult(workload=list(workload), verified=False, candidates=len(candidates))
    result.notes.append("hypopg is not installed: ranked by pg_stats selectivity, unverified")
    offered = set(candidates)
    best: dict[tuple[str, int], tuple[float, Candidate, float]] = {}
    for w in workload:
        for use, rel in zip(w.uses, w.relations, strict=True):
            table = tables[rel]
            if table.rows < settings.min_table_rows:
                continue
            equality = {k.expr for k in use.equality + use.joins}
            for cand in offered:
                if cand.relation != rel or cand.include:
                    continue
                share = estimated_share(cand, equality, selectivity.get(rel, {}))
                if share is None or share > MAX_SHARE:
                    continue
                pages_saved = table.relpages * (1 - share)
                benefit = pages_saved * w.calls
                key = (rel, w.key)
                # per statement, the candidate that narrows most; fewer keys on a tie
                rank = (share, len(cand.keys))
                old = best.get(key)
                if old is None or rank < (old[2], len(old[1].keys)):
                    best[key] = (benefit, cand, share)
    merged: dict[Candidate, list[tuple[WorkloadStatement, float, float]]] = {}
    by_key = {w.key: w for w in workload}
    for (_rel, wkey), (benefit, cand, share) in best.items():
        merged.setdefault(cand, []).append((by_key[wkey], benefit, share))
    recs = []
    for cand, items in merged.items():
        table = tables[cand.relation]
        effects = tuple(
            Effect(w, float(table.relpages), float(table.relpages) * share) for w, _, share in items
        )
        recs.append(
            Recommendation(
                candidate=cand,
                effects=effects,
                saving=sum(b for _, b, _ in items),
                write_penalty=0.0,
                size_bytes=None,
                verified=False,
                selectivity=min(s for _, _, s in items),
            )
        )
    recs.sort(key=lambda r: -r.saving)
    result.recommendations = recs[: settings.max_indexes]
    return result

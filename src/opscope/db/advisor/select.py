"""Choosing the index set: greedy, bounded, net of what each index costs writes.

The benefit of a set is the workload's planner cost saved, cost x calls summed over the
statements, where a statement costs the cheapest of its plans with any one index of the set
(the planner uses one index per table access, all but always for btree lookups). Each step
adds the candidate with the largest marginal saving, counting only statements it improves by
at least `min_improvement` of their cost, minus its write overhead; it stops at
`max_indexes`, or when nothing saves more than it costs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opscope.db.advisor.candidates import Candidate
from opscope.db.catalog import Table


@dataclass(frozen=True)
class Option:
    """One costed candidate: the cost of each statement it changes, with it in place."""

    candidate: Candidate
    #: statement key -> planner cost with this index (only statements whose plan uses it)
    costs: Mapping[int, float]
    size_bytes: int
    write_penalty: float


@dataclass(frozen=True)
class Choice:
    option: Option
    #: workload cost saved when it was added (cost x calls), before its write penalty
    saving: float


#: how far the two windows' ratio is trusted: beyond, one of the clocks is off or a window
#: is too short to say anything (a reset a moment ago)
MIN_SCALE = 0.001
MAX_SCALE = 1000.0


def window_scale(statements_s: float | None, table_stats_s: float | None) -> float:
    """What turns table counters (writes since the table statistics were reset) into the
    workload's window (pg_stat_statements since its own reset): the ratio of the two, so
    savings and write costs are compared as rates. 1 when either window is unknown."""
    if statements_s is None or table_stats_s is None or table_stats_s <= 0:
        return 1.0
    return min(max(statements_s / table_stats_s, MIN_SCALE), MAX_SCALE)


def write_penalty(
    candidate: Candidate,
    table: Table,
    *,
    updates_touching: int,
    existing_indexes: int,
    cost_per_row: float,
    scale: float = 1.0,
) -> float:
    """Planner-cost units the index adds to the writes of the workload's window.

    Every insert and delete, and every update that is not HOT, adds an entry to each index;
    the table counters cover their own window, so they are multiplied by `scale` (see
    `window_scale`). Updates that set one of the index's columns stop being HOT, and then
    every index of the table, old ones included, gets a new entry: `updates_touching` (rows
    written by such UPDATE statements, in the workload's window) costs that beyond the new
    index itself, but only for the updates that were HOT: the others are already counted.
    """
    non_hot = max(table.n_tup_upd - table.n_tup_hot_upd, 0)
    rows = (table.n_tup_ins + table.n_tup_del + non_hot) * scale
    lost_hot = min(updates_touching, table.n_tup_hot_upd * scale) * (existing_indexes + 1)
    return (rows + lost_hot) * cost_per_row


def choose(
    options: Sequence[Option],
    baseline: Mapping[int, float],
    calls: Mapping[int, int],
    *,
    max_indexes: int,
    min_improvement: float,
) -> list[Choice]:
    current = dict(baseline)
    chosen: list[Choice] = []
    remaining = list(options)
    while remaining and len(chosen) < max_indexes:
        best: tuple[float, float, Option] | None = None
        for opt in remaining:
            saving = 0.0
            for key, cost in opt.costs.items():
                base = baseline[key]
                gain = current[key] - cost
                if gain > 0 and gain >= min_improvement * base:
                    saving += gain * calls[key]
            net = saving - opt.write_penalty
            # ties go to the smaller index
            if net > 0 and (
                best is None
                or net > best[0]
                or (net == best[0] and opt.size_bytes < best[2].size_bytes)
            ):
                best = (net, saving, opt)
        if best is None:
            break
        _, saving, opt = best
        chosen.append(Choice(opt, saving))
        remaining.remove(opt)
        for key, cost in opt.costs.items():
            current[key] = min(current[key], cost)
    return chosen

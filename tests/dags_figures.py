"""Everything the pipeline checks read from an aggregation, as plain values to compare with
==: what holds the aggregation's fast path to the plain one (test_dags_batch, and on real
metadata test_dags_airflow)."""

from __future__ import annotations

import math
from typing import Any

from opscope.dags.aggregate import Analysis
from opscope.dags.figures import DagStats
from opscope.dags.runs import RunFacts


def _same(value: Any) -> Any:
    """A value to compare with ==, NaN included."""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


def _facts(f: RunFacts | None) -> Any:
    if f is None:
        return None
    tasks = {
        t: tuple(
            _same(getattr(x, k))
            for k in (
                "start",
                "end",
                "busy",
                "instances",
                "tries",
                "retries",
                "retry_cost",
                "state",
                "pool",
                "pool_slots",
                "ready",
                "to_queue",
                "in_queue",
                "spans",
                "first_scheduled",
                "first_queued",
                "first_start",
            )
        )
        for t, x in f.tasks.items()
    }
    critical = (f.critical.length, f.critical.path, dict(f.critical.slack))
    # a run's tries in an order of their own: the metadata reader's two reads (a row a try,
    # a row a run) give them in their plans' orders, which no figure depends on
    tries = sorted(f.run.tries, key=lambda t: (t.task_id, t.map_index, t.try_number, repr(t)))
    return (f.run.run_id, tries, f.wall, f.work, f.start, critical, tasks)


def dag_figures(s: DagStats) -> Any:
    """Everything the checks read of one DAG."""
    tasks = [
        (
            t,
            [list(getattr(ts, k).values) for k in ("span", "share", "slack")],
            [list(getattr(ts, k).values) for k in ("to_queue", "in_queue", "wait")],
            list(ts.success_index),
            (ts.runs, ts.critical_runs, ts.retried_runs, ts.retries, ts.retry_cost),
            (ts.failures, ts.pool, ts.instances),
        )
        for t, ts in s.tasks.items()
    ]
    return (
        s.dag_id,
        s.runs,
        list(s.states.items()),
        list(s.success_when),
        list(s.success_duration),
        s.success_version,
        tasks,
        list(s.paths.items()),
        [list(x.values) for x in (s.critical_length, s.wall, s.work, s.critical_wait)],
        list(s.failing_tasks.items()),
        (s.first_when, s.last_when, s.last_failure, s.cyclic_runs),
        [_facts(f) for f in s.recent_runs],
        _facts(s.slowest),
    )


def figures(analysis: Analysis) -> Any:
    dags = [dag_figures(s) for s in analysis.dags.values()]
    pools = [
        (
            name,
            p.slots,
            # a pool's tries are read as a set (one sweep over their sorted events)
            sorted(zip(p.ready, p.start, p.end, p.slots_used, strict=True)),
            list(p.dags.items()),
        )
        for name, p in sorted(analysis.pools.items())
    ]
    return dags, pools, analysis.runs, analysis.tries, analysis.notes

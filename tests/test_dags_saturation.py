"""The pool sweep (`saturation`) held to a plain one: every event in (time, delta) order,
the pool's counts walked one event at a time, as the sweep's docstring defines them."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from opscope.dags.figures import PoolStats
from opscope.dags.sweep import saturation


def plain(tries: list[tuple[float, float, float, int]], slots: int) -> tuple[float, float, int]:
    events: list[tuple[float, int, int, int]] = []  # (time, delta, running, waiting)
    for ready, start, end, used in tries:
        if start > ready:
            events += [(ready, 1, 0, 1), (start, -1, 0, -1)]
        if end > start:
            events += [(start, used, used, 0), (end, -used, -used, 0)]
    events.sort(key=lambda e: (e[0], e[1]))  # at one instant, what ends first
    full = waited = 0.0
    running = waiting = peak = 0
    for k, (at, _, d_run, d_wait) in enumerate(events):
        running += d_run
        waiting += d_wait
        peak = max(peak, running + waiting)
        if k + 1 < len(events) and running >= slots:
            gap = events[k + 1][0] - at
            full += gap
            waited += gap * waiting
    return full, waited, peak


# times on a coarse grid, so that many events meet at one instant
instants = st.integers(0, 40).map(lambda k: 1_780_000_000.0 + 15.0 * k)
# a try holds one slot or more (the aggregation stores at least one)
tries = st.lists(st.tuples(instants, instants, instants, st.integers(1, 3)), max_size=60)


@settings(max_examples=300)
@given(tries, st.integers(1, 4))
def test_the_sweep_is_the_plain_one(
    rows: list[tuple[float, float, float, int]], slots: int
) -> None:
    pool = PoolStats("p", slots)
    for ready, start, end, used in rows:
        pool.ready.append(ready)
        pool.start.append(start)
        pool.end.append(end)
        pool.slots_used.append(used)
    full, waited, peak = saturation(pool)
    want_full, want_waited, want_peak = plain(rows, slots)
    assert peak == want_peak
    assert math.isclose(full, want_full, rel_tol=1e-12, abs_tol=1e-6)
    assert math.isclose(waited, want_waited, rel_tol=1e-12, abs_tol=1e-6)


def test_a_slot_freed_at_an_instant_is_taken_at_it() -> None:
    """One slot: a run ends as the next starts, so the pool is full throughout and the
    peak stays one; the second waited 10 s while it was full."""
    pool = PoolStats("p", 1)
    for ready, start, end in ((0.0, 0.0, 10.0), (0.0, 10.0, 20.0)):
        pool.ready.append(ready)
        pool.start.append(start)
        pool.end.append(end)
        pool.slots_used.append(1)
    assert saturation(pool) == (20.0, 10.0, 2)

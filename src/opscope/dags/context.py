"""What the pipeline checks read: one deployment's aggregated history and its thresholds,
with the what-if replays they quote computed once."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from opscope.dags.aggregate import Analysis
from opscope.dags.figures import DagStats
from opscope.dags.graph import list_schedule
from opscope.dags.runs import schedule_of
from opscope.dags.settings import DagThresholds
from opscope.dags.simulate import Simulation, TaskTime, WhatIf, baseline_of, simulate
from opscope.dags.stats import median
from opscope.dags.sweep import saturation, sweeps

KIND = "dags"
#: the latest runs a check replays for its advice: a few are enough for a median, and each
#: replay of a large DAG costs milliseconds
ADVICE_RUNS = 5


@dataclass
class Parallelism:
    """The recent successful runs of one DAG, replayed: what more slots would bring."""

    #: medians over the runs
    wall: float
    critical_path: float
    task_time: float
    slots_used: int
    #: the replay on the slots each run had, and on unlimited slots
    replayed: float
    unlimited: float
    #: fewest slots whose replay is within 5% of unlimited, and its replay
    enough_slots: int
    with_enough: float
    runs: int

    @property
    def speedup(self) -> float:
        return self.replayed / self.unlimited if self.unlimited > 0 else 1.0


@dataclass
class Prepared:
    """What the checks ask of each DAG, worked out once: its Parallelism, and its what-if
    replays (by DAG and what-if). Filled as the checks ask, or ahead of them (`prepare`)."""

    parallelism: dict[str, Parallelism | None] = field(default_factory=dict)
    simulations: dict[tuple[str, Hashable], Simulation | None] = field(default_factory=dict)


@runtime_checkable
class AsksWhatIfs(Protocol):
    """A check whose findings quote what-if replays: which ones it will ask of a DAG."""

    def what_ifs(self, stats: DagStats) -> Iterable[WhatIf]: ...


@dataclass
class DagsContext:
    target: str
    analysis: Analysis
    thresholds: DagThresholds = field(default_factory=DagThresholds)
    prepared: Prepared = field(default_factory=Prepared)
    _sweeps: dict[str, Future[tuple[float, float, int]]] = field(default_factory=dict)
    _sweeper: ThreadPoolExecutor | None = None

    def dags(self) -> list[DagStats]:
        return [self.analysis.dags[k] for k in sorted(self.analysis.dags)]

    def start_sweeps(self) -> None:
        """Start every pool's sweep (`saturation`) on a thread of its own, before the checks
        run: it is numpy sorts and sums, which let go of the interpreter lock, so on a second
        core the sweep of a busy pool (4 million events for a million tries, 0.1 to 0.4 s)
        runs beside the checks' Python instead of after it. `close()` ends the thread."""
        pools = [p for p in self.analysis.pools.values() if sweeps(p)]
        if not pools or self._sweeper is not None:
            return
        self._sweeper = ThreadPoolExecutor(1, thread_name_prefix="opscope-pool-sweep")
        for pool in sorted(pools, key=lambda p: -len(p.start)):  # the longest first
            self._sweeps[pool.name] = self._sweeper.submit(saturation, pool)

    def saturation(self, pool: str) -> tuple[float, float, int]:
        """`saturation` of the pool named `pool`: the sweep started for it, else one now."""
        started = self._sweeps.get(pool)
        if started is not None:
            return started.result()
        return saturation(self.analysis.pools[pool])

    def close(self) -> None:
        """Cancel the sweeps not started, and wait for the one running."""
        if self._sweeper is not None:
            self._sweeper.shutdown(wait=True, cancel_futures=True)
            self._sweeper = None
            self._sweeps.clear()

    def what_if(self, stats: DagStats, what_if: WhatIf) -> Simulation | None:
        return _what_if(stats, what_if, self.prepared)

    def faster_task(self, stats: DagStats, task_id: str, factor: float = 0.5) -> Simulation | None:
        return self.what_if(stats, faster(task_id, factor))

    def parallelism(self, stats: DagStats) -> Parallelism | None:
        known = self.prepared.parallelism
        if stats.dag_id not in known:
            known[stats.dag_id] = _parallelism(stats)
        return known[stats.dag_id]


def faster(task_id: str, factor: float = 0.5) -> WhatIf:
    """The what-if of `task_id` taking `factor` of its time."""
    return WhatIf(tasks={task_id: TaskTime(factor=factor)})


def _key(what_if: WhatIf) -> Hashable:
    return (what_if.slots, tuple(sorted(what_if.tasks.items())), what_if.dropped)


def _what_if(stats: DagStats, what_if: WhatIf, prepared: Prepared) -> Simulation | None:
    key = (stats.dag_id, _key(what_if))
    if key not in prepared.simulations:
        recent = stats.latest(ADVICE_RUNS, success=True)
        prepared.simulations[key] = simulate(stats.dag_id, recent, what_if) if recent else None
    return prepared.simulations[key]


def prepare(stats: DagStats, prepared: Prepared, checks: Sequence[object] = ()) -> None:
    """What the checks will ask of a DAG whose runs are all counted, worked out ahead into
    `prepared`: its latest successful runs made RunFacts and replayed as they ran, its long
    series sorted, its Parallelism, and the what-ifs `checks` will quote (those that say
    which, `AsksWhatIfs`). The metadata reader hands the runs on DAG by DAG, so this work
    goes on while the server sends the next DAG's tries rather than after the read; the
    checks then find it done. The same work, the same figures: each piece is what the
    checks would make, kept where they look for it."""
    for facts in stats.latest(ADVICE_RUNS, success=True):
        baseline_of(facts)
    stats.sort()
    prepared.parallelism[stats.dag_id] = _parallelism(stats)
    for check in checks:
        if isinstance(check, AsksWhatIfs) and not isinstance(check, type):
            for what_if in check.what_ifs(stats):
                _what_if(stats, what_if, prepared)


def _parallelism(stats: DagStats) -> Parallelism | None:
    recent = stats.latest(ADVICE_RUNS, success=True)
    if not recent:
        return None
    graphs = [schedule_of(f) for f in recent]
    own = [baseline_of(f) for f in recent]
    unlimited = [list_schedule(jobs, edges, None, topo) for jobs, edges, topo in graphs]
    used = sorted(max(1, f.concurrency) for f in recent)[len(recent) // 2]
    target = (median(unlimited) or 0.0) * 1.05
    widest = max(len(jobs) for jobs, _, _ in graphs)

    def replay(slots: int) -> float:
        return median([list_schedule(j, e, slots, t) for j, e, t in graphs]) or 0.0

    # doubling, then halving the gap: a few dozen replays however wide the DAG
    low, high = used, used
    with_high = median(own) or 0.0
    while with_high > target and high < widest:
        low, high = high, min(widest, high * 2)
        with_high = replay(high)
    while high - low > 1:
        mid = (low + high) // 2
        with_mid = replay(mid)
        if with_mid <= target:
            high, with_high = mid, with_mid
        else:
            low = mid
    enough, with_enough = high, with_high
    return Parallelism(
        wall=median([f.wall for f in recent]) or 0.0,
        critical_path=median([f.critical.length for f in recent]) or 0.0,
        task_time=median([sum(j.values()) for j, _, _ in graphs]) or 0.0,
        slots_used=used,
        replayed=median(own) or 0.0,
        unlimited=median(unlimited) or 0.0,
        enough_slots=enough,
        with_enough=with_enough,
        runs=len(recent),
    )

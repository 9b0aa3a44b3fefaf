"""What-if: the recent runs' task times replayed through the list scheduler with other slots,
other task times or fewer dependencies (`opscope dags simulate`, quoted by the checks)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from opscope.dags.graph import list_schedule
from opscope.dags.runs import RunFacts, schedule_of
from opscope.dags.stats import median


@dataclass(frozen=True)
class TaskTime:
    """A task's new time: `seconds` for each instance, or `factor` times what it took."""

    seconds: float | None = None
    factor: float | None = None

    def apply(self, took: float) -> float:
        if self.seconds is not None:
            return self.seconds
        return took * (self.factor if self.factor is not None else 1.0)

    def describe(self) -> str:
        if self.seconds is not None:
            return f"{self.seconds:g} s"
        return f"{(self.factor or 1.0) * 100:g}% of its time"


@dataclass(frozen=True)
class WhatIf:
    #: slots for each run; None: the most tasks each run had running at once
    slots: int | None = None
    tasks: Mapping[str, TaskTime] = field(default_factory=dict)
    dropped: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class SimulatedRun:
    run_id: str
    #: what the run took in Airflow
    actual: float
    slots: int
    #: the replay as it ran (its own slots and times): the scheduler's overhead is left out
    baseline: float
    #: the replay with the changes
    expected: float


@dataclass(frozen=True)
class Simulation:
    dag_id: str
    what_if: WhatIf
    runs: tuple[SimulatedRun, ...]

    @property
    def baseline(self) -> float | None:
        return median([r.baseline for r in self.runs])

    @property
    def expected(self) -> float | None:
        return median([r.expected for r in self.runs])

    @property
    def actual(self) -> float | None:
        return median([r.actual for r in self.runs])

    @property
    def speedup(self) -> float | None:
        base, new = self.baseline, self.expected
        if base is None or new is None or new <= 0:
            return None
        return base / new


def _overrides(what_if: WhatIf, facts: RunFacts) -> dict[str, Callable[[float], float]]:
    return {t: change.apply for t, change in what_if.tasks.items() if t in facts.tasks}


def baseline_of(facts: RunFacts) -> float:
    """The replay of the run as it ran (memoized on it: every what-if starts from it)."""
    if facts.baseline is None:
        jobs, edges, topo = schedule_of(facts)
        facts.baseline = list_schedule(jobs, edges, max(1, facts.concurrency), topo)
    return facts.baseline


def simulate_run(facts: RunFacts, what_if: WhatIf) -> SimulatedRun:
    own = max(1, facts.concurrency)
    slots = what_if.slots or own
    baseline = baseline_of(facts)
    jobs, edges, topo = schedule_of(facts, _overrides(what_if, facts), what_if.dropped)
    expected = list_schedule(jobs, edges, slots, topo)
    return SimulatedRun(facts.run.run_id, facts.wall, slots, baseline, expected)


def simulate(dag_id: str, recent: Sequence[RunFacts], what_if: WhatIf) -> Simulation:
    return Simulation(dag_id, what_if, tuple(simulate_run(f, what_if) for f in recent))


def unknown_names(recent: Sequence[RunFacts], what_if: WhatIf) -> list[str]:
    """Tasks and edges of `what_if` that none of the runs has: a typo, said before
    anything is replayed."""
    tasks = {t for f in recent for t in f.tasks}
    edges = {e for f in recent for e in f.edges}
    out = [f"task {t!r}" for t in what_if.tasks if t not in tasks]
    out += [f"edge {a}>{b}" for a, b in sorted(what_if.dropped) if (a, b) not in edges]
    return out

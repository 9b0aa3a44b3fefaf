"""The graph algorithms on plain inputs: the critical path and its slack, the list
scheduler, and the replay of a run's jobs (mapped tasks, dropped edges)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opscope.dags.graph import (
    CycleError,
    critical_path,
    list_schedule,
    max_overlap,
    topology,
)
from opscope.dags.model import Graph, Run, TaskTry
from opscope.dags.runs import facts_of, job_graph, schedule_of
from opscope.dags.simulate import TaskTime, WhatIf, simulate_run


def test_critical_path_of_branches_joining() -> None:
    durations = {"start": 1.0, "long": 3.0, "short": 1.0, "join": 1.0}
    edges = [("start", "long"), ("start", "short"), ("long", "join"), ("short", "join")]
    cp = critical_path(durations, edges)
    assert cp.length == 5.0
    assert cp.path == ("start", "long", "join")
    assert cp.slack == {"start": 0.0, "long": 0.0, "short": 2.0, "join": 0.0}
    assert cp.earliest_start["join"] == 4.0


def test_critical_path_of_a_chain_is_all_of_it() -> None:
    cp = critical_path({"a": 1.0, "b": 2.0, "c": 0.5}, [("a", "b"), ("b", "c")])
    assert cp.path == ("a", "b", "c") and cp.length == 3.5
    assert set(cp.slack.values()) == {0.0}


def test_a_tie_goes_to_the_task_declared_first() -> None:
    cp = critical_path(
        {"a": 1.0, "x": 2.0, "y": 2.0, "z": 1.0}, [("a", "x"), ("a", "y"), ("x", "z"), ("y", "z")]
    )
    assert cp.path == ("a", "x", "z")


def test_edges_to_unknown_tasks_are_ignored_and_cycles_refused() -> None:
    cp = critical_path({"a": 1.0, "b": 1.0}, [("a", "b"), ("gone", "b"), ("a", "a")])
    assert cp.path == ("a", "b")
    with pytest.raises(CycleError):
        critical_path({"a": 1.0, "b": 1.0}, [("a", "b"), ("b", "a")])


def test_list_schedule_on_one_and_two_slots() -> None:
    durations = {"a": 1.0, "b": 2.0, "c": 2.0, "d": 1.0}
    edges = [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]
    assert list_schedule(durations, edges, 1) == 6.0
    assert list_schedule(durations, edges, 2) == 4.0
    assert list_schedule(durations, edges, None) == 4.0
    with pytest.raises(ValueError, match="at least 1"):
        list_schedule(durations, edges, 0)


def test_the_longest_path_ahead_goes_first() -> None:
    # on two slots, starting the head of the long chain first finishes at 4, not 5
    durations = {"c1": 2.0, "c2": 2.0, "x": 1.0, "y": 1.0, "z": 1.0}
    assert list_schedule(durations, [("c1", "c2")], 2) == 4.0


def test_max_overlap() -> None:
    assert max_overlap([(0, 2, 1), (1, 3, 1), (2, 4, 1)]) == 2
    assert max_overlap([(0, 1, 2), (1, 2, 3)]) == 3
    assert max_overlap([]) == 0


@st.composite
def dags(draw: st.DrawFn) -> tuple[dict[str, float], list[tuple[str, str]]]:
    """Random DAGs: edges only from a lower to a higher index, so never a cycle."""
    n = draw(st.integers(min_value=1, max_value=14))
    names = [f"t{i}" for i in range(n)]
    durations = {
        name: draw(st.floats(min_value=0.0, max_value=100.0, allow_nan=False)) for name in names
    }
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    edges = draw(st.lists(st.sampled_from(pairs), unique=True)) if pairs else []
    return durations, edges


@given(dags())
def test_unlimited_slots_take_the_critical_path(
    graph: tuple[dict[str, float], list[tuple[str, str]]],
) -> None:
    durations, edges = graph
    assert math.isclose(
        list_schedule(durations, edges, None), critical_path(durations, edges).length, abs_tol=1e-6
    )


@given(dags())
def test_one_slot_takes_the_sum(graph: tuple[dict[str, float], list[tuple[str, str]]]) -> None:
    durations, edges = graph
    assert math.isclose(list_schedule(durations, edges, 1), sum(durations.values()), abs_tol=1e-6)


@given(dags(), st.integers(min_value=1, max_value=6))
def test_list_scheduling_stays_within_grahams_bound(
    graph: tuple[dict[str, float], list[tuple[str, str]]], slots: int
) -> None:
    durations, edges = graph
    makespan = list_schedule(durations, edges, slots)
    length = critical_path(durations, edges).length
    work = sum(durations.values())
    assert makespan >= max(length, work / slots) - 1e-6
    assert makespan <= work / slots + (1 - 1 / slots) * length + 1e-6


@given(dags())
def test_slack_is_what_a_task_may_grow_by(
    graph: tuple[dict[str, float], list[tuple[str, str]]],
) -> None:
    durations, edges = graph
    cp = critical_path(durations, edges)
    assert all(cp.slack[t] == 0 or t not in cp.path for t in durations)
    assert math.isclose(sum(durations[t] for t in cp.path), cp.length, abs_tol=1e-6)
    for task, slack in cp.slack.items():
        grown = {**durations, task: durations[task] + slack}
        assert critical_path(grown, edges).length <= cp.length + 1e-6
        if slack > 1e-3:
            more = {**durations, task: durations[task] + slack + 1}
            assert critical_path(more, edges).length > cp.length


def _try(
    task: str,
    start: float,
    end: float,
    map_index: int = -1,
    number: int = 1,
    state: str = "success",
) -> TaskTry:
    return TaskTry(task, map_index, number, state, None, 1, None, start - 0.5, start, end)


def test_a_run_with_a_mapped_task_and_a_retry() -> None:
    graph = Graph(
        tasks=("items", "work", "total"),
        edges=frozenset({("items", "work"), ("work", "total")}),
        mapped=frozenset({"work"}),
    )
    run = Run(
        "d",
        "r1",
        "success",
        start=0.0,
        end=10.0,
        tries=[
            _try("items", 0.0, 1.0),
            _try("work", 1.5, 3.0, 0),
            _try("work", 1.5, 2.5, 1),
            _try("work", 3.0, 4.0, 2),
            _try("total", 5.0, 5.5, number=1, state="failed"),
            _try("total", 6.5, 7.0, number=2),
        ],
    )
    facts = facts_of(run, graph)
    work, total = facts.tasks["work"], facts.tasks["total"]
    assert (work.instances, work.span, work.busy) == (3, 2.5, 3.5)
    assert (total.retries, total.retry_cost, total.span, total.state) == (1, 1.5, 2.0, "success")
    assert total.ready == 4.0 and total.wait == 1.0 and total.in_queue == 0.5
    assert facts.critical.path == ("items", "work", "total")
    assert facts.concurrency == 2 and facts.wall == 10.0
    jobs, edges = job_graph(facts)
    assert jobs["work[*]"] == 0.0 and jobs["work[2]"] == 1.0
    assert ("items", "work[0]") in edges and ("work[*]", "total") in edges
    assert list_schedule(jobs, edges, None) == 1.0 + 1.5 + 2.0
    # one slot: the three instances one after the other
    assert list_schedule(jobs, edges, 1) == 1.0 + 1.5 + 1.0 + 1.0 + 2.0


def test_a_what_if_on_a_run() -> None:
    graph = Graph(tasks=("a", "b", "c"), edges=frozenset({("a", "b"), ("b", "c")}))
    run = Run(
        "d",
        "r",
        "success",
        start=0.0,
        end=7.0,
        tries=[_try("a", 0, 1), _try("b", 1, 4), _try("c", 4, 6)],
    )
    facts = facts_of(run, graph)
    assert simulate_run(facts, WhatIf()).expected == 6.0
    assert simulate_run(facts, WhatIf(tasks={"b": TaskTime(factor=0.5)})).expected == 4.5
    assert simulate_run(facts, WhatIf(tasks={"b": TaskTime(seconds=1)})).expected == 4.0
    dropped = simulate_run(facts, WhatIf(slots=2, dropped=frozenset({("a", "b")})))
    assert (dropped.baseline, dropped.expected, dropped.actual) == (6.0, 5.0, 7.0)


@st.composite
def runs_on_graphs(draw: st.DrawFn) -> tuple[Run, Graph, dict[str, float], set[tuple[str, str]]]:
    """A run of a small DAG: some tasks mapped or retried, some named like another's instance
    ("a[0]"), a task or two never tried; with task time factors and edges to drop."""
    names = draw(
        st.lists(st.sampled_from(["a", "b", "c", "d", "a[0]", "b[1]"]), min_size=1, unique=True)
    )
    edges = {
        (names[i], names[j])
        for i in range(len(names))
        for j in range(i + 1, len(names))
        if draw(st.booleans())
    }
    mapped = frozenset(n for n in names if draw(st.booleans()))
    tries = []
    for name in names:
        for index in draw(st.lists(st.integers(-1, 2), max_size=3, unique=True)):
            start = draw(st.integers(0, 20))
            tries.append(_try(name, float(start), float(start + draw(st.integers(0, 9))), index))
    graph = Graph(tasks=tuple(names), edges=frozenset(edges), mapped=mapped)
    factors = {n: draw(st.sampled_from([0.5, 2.0])) for n in names if draw(st.booleans())}
    dropped = {e for e in edges if draw(st.booleans())}
    return Run("d", "r", "success", start=0.0, end=30.0, tries=tries), graph, factors, dropped


@given(runs_on_graphs())
def test_schedule_of_is_job_graph_from_what_it_keeps(
    case: tuple[Run, Graph, dict[str, float], set[tuple[str, str]]],
) -> None:
    """schedule_of keeps the jobs as the run ran and applies other times to a copy of them;
    job_graph makes them afresh: the same jobs, in the same order, and the same edges."""
    run, graph, factors, dropped = case
    facts = facts_of(run, graph)
    durations = {t: TaskTime(factor=f).apply for t, f in factors.items()}
    for drop in (frozenset(), frozenset(dropped)):
        for times in (durations, None, durations):  # the kept jobs never changed
            fresh_jobs, fresh_edges = job_graph(facts, times, drop)
            try:
                order = topology(fresh_jobs, fresh_edges).order
            except CycleError:  # names shared: the jobs of two tasks in a loop
                with pytest.raises(CycleError):
                    schedule_of(facts, times, drop)
                continue
            jobs, edges, topo = schedule_of(facts, times, drop)
            assert list(jobs.items()) == list(fresh_jobs.items()) and edges == fresh_edges
            assert topo.order == order


def _plain_list_schedule(
    durations: dict[str, float], edges: list[tuple[str, str]], slots: int | None
) -> float:
    """The list scheduler without its shortcuts: every moment, finished jobs release their
    slots and successors, then the ready jobs of highest bottom level (first declared on a
    tie) take the free slots; a job of no duration takes none and ends where it starts."""
    topo = topology(durations, edges)
    level: dict[str, float] = {}
    for node in reversed(topo.order):
        below = max((level[s] for s in topo.succs[node]), default=0.0)
        level[node] = max(0.0, durations[node]) + below
    waiting = {n: len(topo.preds[n]) for n in durations}
    ready = {n for n, k in waiting.items() if k == 0}
    running: dict[str, float] = {}
    now = makespan = 0.0
    capacity = slots if slots is not None else len(durations)

    def release(node: str) -> None:
        for nxt in topo.succs[node]:
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                ready.add(nxt)

    while ready or running:
        while True:
            instant = sorted((n for n in ready if durations[n] <= 0), key=topo.position.__getitem__)
            if not instant:
                break
            for n in instant:
                ready.discard(n)
                makespan = max(makespan, now)
                release(n)
        for n in sorted(ready, key=lambda n: (-level[n], topo.position[n])):
            if len(running) >= capacity:
                break
            ready.discard(n)
            running[n] = now + durations[n]
        if not running:
            continue
        now = min(running.values())
        for n in [n for n, end in running.items() if end <= now + 1e-9]:
            del running[n]
            makespan = max(makespan, now)
            release(n)
    return makespan


@given(
    st.integers(1, 12).flatmap(
        lambda n: st.tuples(
            st.lists(st.sampled_from([0.0, 1.0, 2.0, 2.5, 7.0]), min_size=n, max_size=n),
            st.sets(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1))),
            st.one_of(st.none(), st.integers(1, 4)),
        )
    )
)
def test_the_list_scheduler_is_the_plain_one(
    case: tuple[list[float], set[tuple[int, int]], int | None],
) -> None:
    took, pairs, slots = case
    durations = {f"j{i}": d for i, d in enumerate(took)}
    edges = [(f"j{a}", f"j{b}") for a, b in sorted(pairs) if a < b]  # acyclic
    assert list_schedule(durations, edges, slots) == _plain_list_schedule(durations, edges, slots)

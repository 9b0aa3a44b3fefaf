"""Graph algorithms on plain inputs: topological order, the critical path with every task's
slack, and a list scheduler with a fixed number of slots.

Durations map each job to seconds; edges are (upstream, downstream) pairs. Edges that name a
job not in `durations` are ignored (a task removed from the DAG since the run)."""

from __future__ import annotations

import functools
import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from heapq import heapify, heappop, heappush

#: two finish times closer than this are equal (float sums of durations)
EPSILON = 1e-9


class CycleError(ValueError):
    """The edges hold a cycle: no order exists."""


def _adjacency(
    durations: Mapping[str, float], edges: Iterable[tuple[str, str]]
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    preds: dict[str, list[str]] = {n: [] for n in durations}
    succs: dict[str, list[str]] = {n: [] for n in durations}
    seen: set[tuple[str, str]] = set()
    for a, b in edges:
        if a in durations and b in durations and a != b and (a, b) not in seen:
            seen.add((a, b))
            preds[b].append(a)
            succs[a].append(b)
    return preds, succs


def topological_order(
    durations: Mapping[str, float], edges: Iterable[tuple[str, str]]
) -> tuple[list[str], dict[str, list[str]], dict[str, list[str]]]:
    """Jobs in an order where each comes after its upstream ones (ties keep the order of
    `durations`), with the predecessor and successor lists."""
    preds, succs = _adjacency(durations, edges)
    index = {n: i for i, n in enumerate(durations)}
    missing = {n: len(p) for n, p in preds.items()}
    ready = [(index[n], n) for n, k in missing.items() if k == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, node = heapq.heappop(ready)
        order.append(node)
        for nxt in succs[node]:
            missing[nxt] -= 1
            if missing[nxt] == 0:
                heapq.heappush(ready, (index[nxt], nxt))
    if len(order) != len(durations):
        raise CycleError("the dependencies form a cycle")
    return order, preds, succs


@dataclass(frozen=True)
class CriticalPath:
    #: the longest path's length: the shortest the whole can take with unlimited slots
    length: float
    #: the jobs on it, in order
    path: tuple[str, ...]
    earliest_start: Mapping[str, float]
    #: how much each job may grow before the whole grows (0 on the critical path)
    slack: Mapping[str, float]


def critical_path(durations: Mapping[str, float], edges: Iterable[tuple[str, str]]) -> CriticalPath:
    """The longest path through the graph by `durations` (the critical path method)."""
    if not durations:
        return CriticalPath(0.0, (), {}, {})
    order, preds, succs = topological_order(durations, edges)
    es: dict[str, float] = {}
    for node in order:
        es[node] = max((es[p] + durations[p] for p in preds[node]), default=0.0)
    ef = {n: es[n] + max(0.0, durations[n]) for n in order}
    length = max(ef.values())
    lf: dict[str, float] = {}
    for node in reversed(order):
        lf[node] = min((lf[s] - max(0.0, durations[s]) for s in succs[node]), default=length)
    # float sums leave a critical task a slack of 1e-15 or so: that is none
    tolerance = EPSILON * max(1.0, length)
    slack = {n: lf[n] - ef[n] if lf[n] - ef[n] > tolerance else 0.0 for n in durations}
    # walk back from the job that ends last, each time to the upstream job that ended last;
    # ties go to the one declared first, so the same run always gives the same path
    position = {n: i for i, n in enumerate(durations)}
    node = min((n for n in order if ef[n] >= length - EPSILON), key=position.__getitem__)
    path = [node]
    while preds[node]:
        best = max(ef[p] for p in preds[node])
        if best < es[node] - EPSILON:
            break
        node = min((p for p in preds[node] if ef[p] >= best - EPSILON), key=position.__getitem__)
        path.append(node)
    path.reverse()
    return CriticalPath(length, tuple(path), es, slack)


def bottom_levels(
    durations: Mapping[str, float], order: list[str], succs: Mapping[str, list[str]]
) -> dict[str, float]:
    """Each job's duration plus the longest path after it: the list scheduler's priority."""
    # loops rather than max() of generators: a replay calls this for every job, and levels
    # are never negative, so 0.0 is the default the generator had
    level: dict[str, float] = {}
    for node in reversed(order):
        best = 0.0
        for s in succs[node]:
            below = level[s]
            if below > best:
                best = below
        took = durations[node]
        level[node] = (took if took > 0.0 else 0.0) + best
    return level


@dataclass(frozen=True)
class Topology:
    """What `list_schedule` derives from the jobs' names and the edges alone: worked out once
    for replays of one job graph with other durations or slots."""

    order: list[str]
    preds: dict[str, list[str]]
    succs: dict[str, list[str]]
    position: dict[str, int]


def topology(durations: Mapping[str, float], edges: Iterable[tuple[str, str]]) -> Topology:
    order, preds, succs = topological_order(durations, edges)
    return Topology(order, preds, succs, {n: i for i, n in enumerate(durations)})


def shared_topology(durations: Mapping[str, float], edges: Sequence[tuple[str, str]]) -> Topology:
    """`topology`, one for every job graph of the same names in the same order and the same
    edges: the recent runs of a DAG mostly share theirs, and each of their what-ifs would
    sort the same jobs again. The result is shared: never change it."""
    return _topology_of(tuple(durations), tuple(edges))


@functools.lru_cache(maxsize=256)
def _topology_of(names: tuple[str, ...], edges: tuple[tuple[str, str], ...]) -> Topology:
    return topology(dict.fromkeys(names, 0.0), edges)


def list_schedule(
    durations: Mapping[str, float],
    edges: Iterable[tuple[str, str]],
    slots: int | None = None,
    topo: Topology | None = None,
) -> float:
    """The makespan of the jobs on `slots` slots (None: as many as needed) by list
    scheduling: whenever a slot is free, the ready job with the longest path ahead of it
    starts. Jobs of zero duration (a join of mapped instances, a skipped task) take no
    slot. `topo` is `topology(durations, edges)`, when known (the same names in the same
    order, the same edges)."""
    if slots is not None and slots < 1:
        raise ValueError("slots must be at least 1")
    if not durations:
        return 0.0
    if topo is None:
        topo = topology(durations, edges)
    order, preds, succs, position = topo.order, topo.preds, topo.succs, topo.position
    level = bottom_levels(durations, order, succs)
    missing = {n: len(preds[n]) for n in durations}
    ready: list[tuple[float, int, str]] = [
        (-level[n], position[n], n) for n in order if missing[n] == 0
    ]
    heapify(ready)
    running: list[tuple[float, int, str]] = []
    now = 0.0
    done = 0
    total = len(durations)
    free = slots if slots is not None else total
    makespan = 0.0
    # finishing a job (its successors' counts) is written out at each of its two places
    # rather than called: a replay of a hundred tasks finishes a hundred jobs, and the
    # what-ifs replay thousands of runs
    while done < total:
        while ready:
            node = ready[0][2]
            if durations[node] <= 0:
                heappop(ready)
                done += 1
                if now > makespan:
                    makespan = now
                for nxt in succs[node]:
                    missing[nxt] -= 1
                    if not missing[nxt]:
                        heappush(ready, (-level[nxt], position[nxt], nxt))
                continue
            if free == 0:
                break
            heappop(ready)
            free -= 1
            heappush(running, (now + durations[node], position[node], node))
        if not running:
            if ready:
                continue
            break  # nothing runs and nothing is ready: every job is done
        # the first job to end, and every job that ends at the same moment, free their
        # slots before the next choice
        now = running[0][0]
        if now > makespan:
            makespan = now
        while running and running[0][0] <= now + EPSILON:
            node = heappop(running)[2]
            free += 1
            done += 1
            for nxt in succs[node]:
                missing[nxt] -= 1
                if not missing[nxt]:
                    heappush(ready, (-level[nxt], position[nxt], nxt))
    return makespan


def max_overlap(intervals: Iterable[tuple[float, float, int]]) -> int:
    """The largest total weight of intervals (start, end, weight) open at one moment; an
    interval ending when another starts does not overlap it."""
    events: list[tuple[float, int]] = []
    for start, end, weight in intervals:
        if end > start:
            events.append((start, weight))
            events.append((end, -weight))
    events.sort()  # by time, an end (negative) before a start: the pairs' own order
    best = current = 0
    for _, delta in events:
        current += delta
        if current > best:
            best = current
    return best


class Plan:
    """A graph's topological order and adjacency as indexes: built once per DAG version and
    reused for the critical path of each of its runs."""

    def __init__(self, nodes: Sequence[str], edges: Iterable[tuple[str, str]]) -> None:
        order, preds, succs = topological_order(dict.fromkeys(nodes, 0.0), edges)
        self.nodes = list(nodes)
        self.index = {n: i for i, n in enumerate(self.nodes)}
        self.order = [self.index[n] for n in order]
        self.preds = [[self.index[p] for p in preds[n]] for n in self.nodes]
        self.succs = [[self.index[s] for s in succs[n]] for n in self.nodes]
        #: upstream task names of each task that has some
        self.upstream = {n: list(preds[n]) for n in self.nodes if preds[n]}

    def walk_back(self, last: int, es: Sequence[float], ef: Sequence[float]) -> list[int]:
        """The critical path ending at node `last`, first node first: from each node, back
        to the predecessor (the lowest index among ties) that finished when it started."""
        preds = self.preds
        node = last
        path = [node]
        while preds[node]:
            best = max(ef[p] for p in preds[node])
            if best < es[node] - EPSILON:
                break
            node = min(p for p in preds[node] if ef[p] >= best - EPSILON)
            path.append(node)
        path.reverse()
        return path

    def critical_path(self, durations: Sequence[float]) -> CriticalPath:
        """`critical_path` of these nodes with `durations` in node order."""
        n = len(self.nodes)
        if n == 0:
            return CriticalPath(0.0, (), {}, {})
        d = [x if x > 0 else 0.0 for x in durations]
        es = [0.0] * n
        ef = [0.0] * n
        preds, succs = self.preds, self.succs
        for v in self.order:
            best = 0.0
            for p in preds[v]:
                if ef[p] > best:
                    best = ef[p]
            es[v] = best
            ef[v] = best + d[v]
        length = max(ef)
        lf = [length] * n
        for v in reversed(self.order):
            best = length
            for s in succs[v]:
                ls = lf[s] - d[s]
                if ls < best:
                    best = ls
            lf[v] = best
        tolerance = EPSILON * max(1.0, length)
        nodes = self.nodes
        slack = {}
        for i in range(n):
            gap = lf[i] - ef[i]
            slack[nodes[i]] = gap if gap > tolerance else 0.0
        path = self.walk_back(min(i for i in range(n) if ef[i] >= length - EPSILON), es, ef)
        return CriticalPath(
            length, tuple(nodes[i] for i in path), dict(zip(nodes, es, strict=True)), slack
        )

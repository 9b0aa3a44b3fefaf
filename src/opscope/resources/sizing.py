"""How many connections a pool needs, from Little's law and the Erlang C formula.

Little's law: the connections busy on average (the offered load, in Erlangs) are the rate of
checkouts times how long each holds its connection — for an API, the request rate times the
database time per request. A pool of exactly that size is busy all the time and every burst
waits; the Erlang C formula (M/M/c) gives the chance that a checkout has to wait with c
connections, and the size advised is the smallest c that keeps it under a target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def erlang_c(servers: int, load: float) -> float:
    """The chance an arrival waits, with `servers` connections and `load` Erlangs offered;
    1.0 when the load reaches the servers (the queue grows without bound)."""
    if load <= 0:
        return 0.0
    if servers <= load:
        return 1.0
    # the Erlang B recursion is stable for any size; C follows from B
    b = 1.0
    for k in range(1, servers + 1):
        b = load * b / (k + load * b)
    rho = load / servers
    return b / (1 - rho + rho * b)


def servers_for(load: float, target_wait: float) -> int:
    """The fewest connections for which a checkout waits with at most `target_wait`
    probability."""
    if load <= 0:
        return 1
    c = max(1, math.floor(load) + 1)
    while erlang_c(c, load) > target_wait:
        c += 1
    return c


@dataclass(frozen=True)
class Sizing:
    #: connections busy on average, all processes together (Little's law)
    load: float
    #: processes that each have their own pool
    processes: int
    #: connections advised per process, and all together
    per_process: int
    total: int
    #: chance a checkout waits now, and with the advised size (per process)
    wait_now: float
    wait_advised: float


def size_pool(
    load: float, processes: int, current_per_process: int, target_wait: float, at_least: int = 1
) -> Sizing:
    """Each process's pool serves its share of the load on its own (a request never borrows
    another worker's connection); `at_least` bounds the size from below (a pool that was
    seen to make checkouts wait needs more than it has, whatever an average load says)."""
    processes = max(1, processes)
    share = load / processes
    per = max(at_least, servers_for(share, target_wait))
    return Sizing(
        load=load,
        processes=processes,
        per_process=per,
        total=per * processes,
        wait_now=erlang_c(max(1, current_per_process), share),
        wait_advised=erlang_c(per, share),
    )

"""The per-process aggregates of the middleware: what each finished request adds, with as
little work as the hot path allows (no prometheus_client call per request: a few dict
look-ups and list increments under one lock), and the snapshot /metrics is built from.

Label values are bounded: route templates come from the app (past `max_routes`, OTHER),
methods from a fixed list, status codes are three digits, statements are capped per route
and exception types too.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Hashable
from typing import Any

from opscope.api.multiprocess import read_snapshots, snapshot_name, write_snapshot
from opscope.api.pools import pool_figures
from opscope.api.record import RequestRecord
from opscope.api.routes import OTHER
from opscope.api.statements import statement_key

#: http.server.request.duration's buckets (OpenTelemetry's), with 1 and 2.5 ms added:
#: API latencies are often below 5 ms, and p95 is read from these bounds
DURATION_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
QUERY_BUCKETS = (0.0, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)
#: how long one answer to a repeated GET stayed the same, seconds
STABLE_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0)

log = logging.getLogger(__name__)

OTHER_STATEMENT = "<other>"
OTHER_ERROR = "<other>"


class Hist:
    """A histogram's bucket counts (the last is +Inf) and sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bound's bucket (le)
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def dump(self, observations: int | None = None) -> list[Any]:
        """`observations`: how many values the histogram stands for, when the zeros were
        not observed one by one (they are added to the first bucket)."""
        counts = list(self.counts)
        if observations is not None:
            counts[0] += observations - sum(counts)
        return [counts, self.sum]


class Series(Hist):
    """The latency histogram of one (route, method, status), with its route's figures at
    hand: the hot path finds both in one dict look-up."""

    __slots__ = ("stats",)

    def __init__(self, bounds: tuple[float, ...], stats: RouteStats) -> None:
        super().__init__(bounds)
        self.stats = stats


class RouteStats:
    __slots__ = (
        "changes",
        "connects",
        "db",
        "exceptions",
        "keys",
        "n_plus_one",
        "private",
        "queries",
        "repeats",
        "serialization",
        "stable",
        "statements",
    )

    def __init__(self) -> None:
        self.db = Hist(DURATION_BUCKETS)
        self.queries = Hist(QUERY_BUCKETS)
        self.serialization = Hist(DURATION_BUCKETS)
        #: requests in which one statement ran `n_plus_one` times or more
        self.n_plus_one = 0
        #: connections opened by the requests themselves (not taken from a pool)
        self.connects = 0
        #: fingerprint -> [text, calls, seconds, n+1 requests, most repeats in one request]
        self.statements: dict[str, list[Any]] = {}
        self.exceptions: dict[str, int] = {}
        # for the cache analysis: GET/HEAD 2xx answers to a request seen before, those that
        # differed from the previous answer, requests carrying credentials or answered with a
        # cookie, distinct requests tracked, and how long answers stayed the same
        self.repeats = 0
        self.changes = 0
        self.private = 0
        self.keys = 0
        self.stable = Hist(STABLE_BUCKETS)

    def dump(self, requests: int) -> dict[str, Any]:
        """`requests`: the route's requests, every one of them in the series; those without
        database work or serialization were not observed (their zero is implied)."""
        return {
            "db": self.db.dump(requests),
            "queries": self.queries.dump(requests),
            "serialization": self.serialization.dump(requests),
            "n_plus_one": self.n_plus_one,
            "connects": self.connects,
            "statements": {fp: list(v) for fp, v in self.statements.items()},
            "exceptions": dict(self.exceptions),
            "responses": [self.repeats, self.changes, self.private, self.keys],
            "stable": self.stable.dump(),
        }


#: a request's statements grouped: fingerprint -> (normalized text, calls, seconds)
Grouped = dict[str, tuple[str, int, float]]


def group_queries(queries: list[tuple[str, float]]) -> Grouped:
    by_text: dict[str, list[float]] = {}
    for text, seconds in queries:
        slot = by_text.get(text)
        if slot is None:
            by_text[text] = [1, seconds]
        else:
            slot[0] += 1
            slot[1] += seconds
    out: Grouped = {}
    for text, (calls, seconds) in by_text.items():
        fp, normalized = statement_key(text)
        prev = out.get(fp)
        if prev is None:
            out[fp] = (normalized, int(calls), seconds)
        else:
            out[fp] = (prev[0], prev[1] + int(calls), prev[2] + seconds)
    return out


class Recorder:
    """Everything the middleware recorded in this process. One per process by default
    (`default_recorder()`), shared by every instrumented app in it."""

    def __init__(
        self,
        *,
        statements_per_route: int = 20,
        n_plus_one_statements_extra: int = 5,
        exceptions_per_route: int = 10,
        max_routes: int = 1000,
        max_tracked_responses: int = 10_000,
        multiprocess_dir: str | None = None,
        flush_interval_s: float = 1.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.statements_per_route = statements_per_route
        self.n_plus_one_statements_extra = n_plus_one_statements_extra
        self.exceptions_per_route = exceptions_per_route
        self.max_routes = max_routes
        self.max_tracked_responses = max_tracked_responses
        self.multiprocess_dir = multiprocess_dir
        self.flush_interval_s = flush_interval_s
        self.wall_clock = wall_clock
        self.lock = threading.Lock()
        self._reset()
        if multiprocess_dir is not None:
            os.makedirs(multiprocess_dir, exist_ok=True)
            # a forked worker starts from nothing: what the parent recorded is the parent's
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self.lock = threading.Lock()
        self.started = self.wall_clock()
        self.pid = os.getpid()
        self.series: dict[tuple[str, str, int], Series] = {}
        self.routes: dict[str, RouteStats] = {}
        #: requests being served -> (method label, how to find their route once routed)
        self.active: dict[RequestRecord, tuple[str, Callable[[RequestRecord], str | None]]] = {}
        #: (route, path, query, vary values) -> [digest of the last answer, when it began]
        self.responses: dict[Hashable, list[Any]] = {}
        #: response cache counts by rule template: hits, misses, stale, bypasses, errors
        self.cache: dict[str, list[int]] = {}
        #: bumped by every finished request; the flusher writes when it moved
        self.version = 0
        self.flusher: threading.Thread | None = None

    # --- the hot path ------------------------------------------------------------------

    def begin(
        self, record: RequestRecord, method: str, route_of: Callable[[RequestRecord], str | None]
    ) -> None:
        # one dict store is atomic under the GIL; snapshot() copies the dict in one step
        self.active[record] = (method, route_of)

    def finish(
        self,
        record: RequestRecord,
        route: str,
        method: str,
        duration: float,
        n_plus_one: int = 5,
        response_key: Hashable | None = None,
        now: float = 0.0,
    ) -> None:
        """Add a finished request. `response_key` identifies a GET/HEAD request (path,
        sorted query, the values of the headers the response varies on) for the body
        digest; `now` is the timer's reading at the end, for how long answers last."""
        queries = record.queries
        grouped = group_queries(queries) if queries else None
        status = record.status
        lock = self.lock
        # acquire and release around try/finally, not `with`: a with block looks up
        # __enter__ and __exit__ and calls __exit__ with three arguments, 0.9k instructions
        # a request more (callgrind)
        lock.acquire()
        try:
            self.active.pop(record, None)
            series = self.series.get((route, method, status))
            if series is None:
                series = self._series(route, method, status)
            stats = series.stats
            # Hist.observe, inlined. The database and serialization histograms observe only
            # what is not zero: a request without queries costs them nothing, and the
            # zeros are put back at the snapshot (the route's requests less what was seen)
            series.counts[bisect_left(DURATION_BUCKETS, duration)] += 1
            series.sum += duration
            db_count = record.db_count
            db_time = record.db_time
            if db_count or db_time:
                hist = stats.db
                hist.counts[bisect_left(DURATION_BUCKETS, db_time)] += 1
                hist.sum += db_time
                hist = stats.queries
                hist.counts[bisect_left(QUERY_BUCKETS, db_count)] += 1
                hist.sum += db_count
                if record.connects:
                    stats.connects += record.connects
                if grouped is not None:
                    self._statements(stats, grouped, n_plus_one)
            serialization = record.serialization_time
            if serialization:
                hist = stats.serialization
                hist.counts[bisect_left(DURATION_BUCKETS, serialization)] += 1
                hist.sum += serialization
            if record.error is not None:
                self._exception(stats, record.error)
            if record.private:
                stats.private += 1
            digest = record.body_digest
            if response_key is not None and digest is not None:
                key = (route, response_key)
                state = self.responses.get(key)
                if state is not None and state[0] == digest:
                    stats.repeats += 1  # the same answer again, the common case: inlined
                else:
                    self._response(stats, key, state, digest, now)
            self.version += 1
        finally:
            lock.release()
        if self.multiprocess_dir is not None and self.flusher is None:
            self._start_flusher()

    def _series(self, route: str, method: str, status: int) -> Series:
        """The series of a label set seen for the first time (under the lock); past
        `max_routes` routes a new one is counted as OTHER."""
        stats = self.routes.get(route)
        if stats is None:
            if len(self.routes) >= self.max_routes:
                route = OTHER
                stats = self.routes.get(route)
            if stats is None:
                stats = self.routes[route] = RouteStats()
        key = (route, method, status)
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = Series(DURATION_BUCKETS, stats)
        return series

    def cache_event(self, route: str, event: int) -> None:
        """Count what the response cache did for one request of `route` (a rule's template);
        `event` indexes opscope.api.cache.stats.EVENTS."""
        with self.lock:
            counts = self.cache.get(route)
            if counts is None:
                if len(self.cache) >= self.max_routes:
                    return
                counts = self.cache[route] = [0, 0, 0, 0, 0]
            counts[event] += 1
            self.version += 1
        if self.multiprocess_dir is not None and self.flusher is None:
            self._start_flusher()

    def _exception(self, stats: RouteStats, name: str) -> None:
        if name not in stats.exceptions and len(stats.exceptions) >= self.exceptions_per_route:
            name = OTHER_ERROR
        stats.exceptions[name] = stats.exceptions.get(name, 0) + 1

    def _statements(self, stats: RouteStats, grouped: Grouped, n_plus_one: int) -> None:
        flagged = False
        table = stats.statements
        for fp, (text, calls, seconds) in grouped.items():
            repeated = calls >= n_plus_one
            entry = table.get(fp)
            if entry is None:
                room = self.statements_per_route + (
                    self.n_plus_one_statements_extra if repeated else 0
                )
                if len(table) - (OTHER_STATEMENT in table) >= room:
                    fp, text = OTHER_STATEMENT, OTHER_STATEMENT
                    entry = table.get(fp)
                if entry is None:
                    entry = table[fp] = [text, 0, 0.0, 0, 0]
            entry[1] += calls
            entry[2] += seconds
            if repeated:
                flagged = True
                entry[3] += 1
                if calls > entry[4]:
                    entry[4] = calls
        if flagged:
            stats.n_plus_one += 1

    def _response(
        self, stats: RouteStats, key: Hashable, state: list[Any] | None, digest: int, now: float
    ) -> None:
        """A GET answered for the first time, or differently from its last answer (`state`:
        that answer's [digest, since when], None if there was none)."""
        if state is None:
            if len(self.responses) < self.max_tracked_responses:
                self.responses[key] = [digest, now]
                stats.keys += 1
            return
        stats.repeats += 1
        if state[0] != digest:
            stats.changes += 1
            stats.stable.observe(now - state[1])
            state[0] = digest
            state[1] = now

    # --- reading -------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """This process's aggregates as plain data (what a multiprocess file holds)."""
        with self.lock:
            active = list(self.active.items())
            requests: dict[str, int] = {}
            for (label, _, _), hist in self.series.items():
                requests[label] = requests.get(label, 0) + sum(hist.counts)
            data: dict[str, Any] = {
                "pid": self.pid,
                "started": self.started,
                "series": [
                    [route, method, status, *hist.dump()]
                    for (route, method, status), hist in self.series.items()
                ],
                "routes": {
                    route: stats.dump(requests.get(route, 0))
                    for route, stats in self.routes.items()
                },
                "cache": {route: list(counts) for route, counts in self.cache.items()},
            }
        in_flight: dict[tuple[str, str], int] = {}
        for rec, (method, route_of) in active:
            # routed by now, or not yet: only the first are counted
            route = rec.route or route_of(rec)
            if route is not None:
                in_flight[(route, method)] = in_flight.get((route, method), 0) + 1
        data["active"] = [[route, method, n] for (route, method), n in in_flight.items()]
        data["pools"] = pool_figures()
        return data

    # --- multiprocess mode -------------------------------------------------------------

    def _start_flusher(self) -> None:
        with self.lock:
            if self.flusher is not None:
                return
            self.flusher = threading.Thread(
                target=self._flush_loop, name="opscope-metrics-flush", daemon=True
            )
        self.flusher.start()
        atexit.register(self.flush)

    def _flush_loop(self) -> None:
        me = self.flusher
        written = -1
        # a forked child gets a new flusher; this one (the parent's, copied) stops
        while self.flusher is me:
            if self.version != written:
                written = self.version
                self.flush()
            time.sleep(self.flush_interval_s)

    def flush(self) -> None:
        """Write this process's snapshot where the other workers' /metrics read it."""
        if self.multiprocess_dir is None:
            return
        try:
            write_snapshot(self.multiprocess_dir, self.snapshot())
        except OSError:
            log.warning("opscope: cannot write metrics to %s", self.multiprocess_dir, exc_info=True)

    def merged_snapshots(self) -> list[dict[str, Any]]:
        """This process's snapshot, live, and in multiprocess mode every other process's
        last one (their in-flight requests only while they live)."""
        own = self.snapshot()
        if self.multiprocess_dir is None:
            return [own]
        return [own, *read_snapshots(self.multiprocess_dir, exclude=snapshot_name(own))]


_default: Recorder | None = None
_default_lock = threading.Lock()


def default_recorder() -> Recorder:
    """The process's recorder, in multiprocess mode when $PROMETHEUS_MULTIPROC_DIR is set
    (read once, when the first instrumented app starts)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Recorder(multiprocess_dir=os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None)
        return _default

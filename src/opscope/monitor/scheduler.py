"""Runs each collector on its interval, with jitter and a timeout, each in its own thread.

A collector that raises or overruns its timeout is recorded as a failed run (in the store,
in its status, in `opscope_collector_errors_total`) and the others go on. One that overran
is not started again until its thread returns: a stuck database must not pile up threads
behind it. What a run read is kept in the store and exposed on /metrics; what a failed run
left is not exposed (stale numbers look alive).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from opscope.errors import first_line
from opscope.findings import Report, utc_now
from opscope.monitor.collector import (
    Analysis,
    CollectContext,
    Collection,
    Collector,
    CollectorError,
)
from opscope.monitor.exposition import CollectorStatus, Exposition
from opscope.monitor.store import RunRecord, Store, to_ts
from opscope.redact import redact

log = logging.getLogger("opscope.serve")


@dataclass
class AnalysisCollector:
    """An area's analysis run as a collector: its findings are kept in the store and
    counted on /metrics by check and severity."""

    analysis: Analysis
    interval_s: float
    timeout_s: float
    name: str = field(init=False)
    kind: str = field(init=False)
    target: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = f"analysis/{self.analysis.name}"
        self.kind = self.analysis.kind
        self.target = self.analysis.target

    def collect(self, context: CollectContext) -> Collection:
        report = self.analysis.run(context)
        return Collection(metrics=finding_families(report, self.kind), report=report)


def finding_families(report: Report, kind: str) -> list[Metric]:
    counts = GaugeMetricFamily(
        "opscope_findings",
        "Findings of the target's last analysis, by check and severity.",
        labels=["target", "kind", "check", "severity"],
    )
    tally: dict[tuple[str, str, str], int] = {}
    for f in report.findings:
        key = (f.target, f.check, f.severity.value)
        tally[key] = tally.get(key, 0) + 1
    for (target, check, severity), n in sorted(tally.items()):
        counts.add_metric([target, kind, check, severity], float(n))
    errors = GaugeMetricFamily(
        "opscope_check_errors",
        "Checks that could not run in the target's last analysis.",
        labels=["target", "kind", "check"],
    )
    failed: dict[tuple[str, str], int] = {}
    for e in report.errors:
        where = (e.target or "", e.check)
        failed[where] = failed.get(where, 0) + 1
    for (target, check), n in sorted(failed.items()):
        errors.add_metric([target, kind, check], float(n))
    return [counts, errors]


@dataclass
class Job:
    collector: Collector
    next_at: float
    runs: int = 0
    errors: int = 0
    up: bool | None = None
    last_started: float | None = None
    last_success: float | None = None
    last_duration_s: float | None = None
    last_error: str | None = None
    #: monotonic start of the run in progress
    running_since: float | None = None
    #: the run in progress overran its timeout: its result is dropped when it returns
    abandoned: bool = False
    #: the job was removed by a reload while running
    removed: bool = False

    def status(self) -> CollectorStatus:
        c = self.collector
        return CollectorStatus(
            name=c.name,
            kind=c.kind,
            target=c.target,
            interval_s=c.interval_s,
            timeout_s=c.timeout_s,
            runs=self.runs,
            errors=self.errors,
            up=self.up,
            last_started=self.last_started,
            last_success=self.last_success,
            last_duration_s=self.last_duration_s,
            last_error=self.last_error,
            running=self.running_since is not None,
        )


class Scheduler:
    def __init__(
        self,
        store: Store | None,
        exposition: Exposition,
        *,
        jitter: float = 0.1,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        housekeeping: Callable[[], None] | None = None,
        housekeeping_every_s: float = 600.0,
    ) -> None:
        self.store = store
        self.exposition = exposition
        self.jitter = jitter
        self.clock = clock
        self.monotonic = monotonic
        self.rng = rng or random.Random()
        self.housekeeping = housekeeping
        self.housekeeping_every_s = housekeeping_every_s
        self.store_errors = 0
        self.last_store_error: str | None = None
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._workers: set[threading.Thread] = set()
        self.started = False

    # --- the set of collectors -------------------------------------------------------------

    def set_collectors(self, collectors: Sequence[Collector]) -> None:
        """Schedule exactly `collectors`. One already scheduled under the same name keeps its
        status and its next run (with its new interval); new ones start within their first
        jittered interval; removed ones stop being exposed."""
        names = [c.name for c in collectors]
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"collectors registered twice: {', '.join(dupes)}")
        now = self.monotonic()
        with self._lock:
            kept: dict[str, Job] = {}
            for c in collectors:
                job = self._jobs.get(c.name)
                if job is None:
                    job = Job(c, next_at=now + self._spread(c.interval_s, first=True))
                else:
                    job.collector = c
                kept[c.name] = job
            for name, job in self._jobs.items():
                if name not in kept:
                    job.removed = True
            self._jobs = kept
        self.exposition.keep_only(kept)
        self._wake.set()

    def _spread(self, interval: float, first: bool = False) -> float:
        # the first run of each comes soon (within a second or its jitter), so a new
        # service shows data quickly but its collectors do not all start at once
        span = self.jitter * interval
        if first:
            return self.rng.uniform(0.0, min(span, 1.0) if span else 0.0)
        return interval + self.rng.uniform(0.0, span)

    def statuses(self) -> list[CollectorStatus]:
        with self._lock:
            return [self._jobs[n].status() for n in sorted(self._jobs)]

    def collectors(self) -> list[Collector]:
        with self._lock:
            return [self._jobs[n].collector for n in sorted(self._jobs)]

    # --- running ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="opscope-scheduler", daemon=True)
        self._thread.start()
        self.started = True

    def stop(self, grace_s: float = 10.0) -> None:
        """Start nothing more; wait up to `grace_s` for the runs in progress (their results
        are kept) and leave the rest, which are daemon threads."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        deadline = self.monotonic() + grace_s
        for worker in list(self._workers):
            worker.join(timeout=max(deadline - self.monotonic(), 0.0))

    def run_now(self, name: str) -> None:
        """Make `name` due at once (tests, and later a manual refresh)."""
        with self._lock:
            job = self._jobs.get(name)
            if job is not None:
                job.next_at = self.monotonic()
        self._wake.set()

    def _loop(self) -> None:
        next_housekeeping = self.monotonic() + 5.0
        while not self._stopping.is_set():
            now = self.monotonic()
            wait = 1.0
            overran: list[Job] = []
            with self._lock:
                for job in self._jobs.values():
                    if job.running_since is not None:
                        overdue = job.running_since + job.collector.timeout_s
                        if not job.abandoned and now >= overdue:
                            job.abandoned = True
                            overran.append(job)
                        continue
                    if now >= job.next_at:
                        self._launch(job, now)
                    else:
                        wait = min(wait, job.next_at - now)
            for job in overran:
                at = self.clock()
                self._failed(job, f"timed out after {job.collector.timeout_s:g} s", at, at, None)
            if self.housekeeping is not None and now >= next_housekeeping:
                next_housekeeping = now + self.housekeeping_every_s
                self._launch_housekeeping()
            self._wake.wait(timeout=max(wait, 0.01))
            self._wake.clear()

    def _launch(self, job: Job, now: float) -> None:
        job.running_since = now
        job.abandoned = False
        job.last_started = to_ts(self.clock())
        job.next_at = now + self._spread(job.collector.interval_s)
        worker = threading.Thread(
            target=self._run, args=(job,), name=f"opscope-{job.collector.name}", daemon=True
        )
        self._workers.add(worker)
        worker.start()

    def _launch_housekeeping(self) -> None:
        def run() -> None:
            try:
                assert self.housekeeping is not None
                self.housekeeping()
            except Exception as exc:  # retention is retried next time; never fatal
                log.warning("opscope serve: retention failed: %s", redact(first_line(exc)))

        threading.Thread(target=run, name="opscope-retention", daemon=True).start()

    def _run(self, job: Job) -> None:
        collector = job.collector
        started = self.clock()
        t0 = time.perf_counter()
        collection: Collection | None = None
        error: str | None = None
        partial: Collection | None = None
        try:
            collection = collector.collect(CollectContext(history=self.store, clock=self.clock))
        except CollectorError as exc:
            error, partial = redact(str(exc)), exc.collection
        except Exception as exc:  # a collector's bug must not stop the others
            error = redact(f"{type(exc).__name__}: {first_line(exc)}")
        finished = self.clock()
        try:
            with self._lock:
                job.last_duration_s = time.perf_counter() - t0
                # an overrun already counted as failed, a removed collector is gone, and a
                # run that failed because the service is stopping is no failure of its own
                if job.abandoned or job.removed or (self._stopping.is_set() and collection is None):
                    return
            if collection is not None:
                self._succeeded(job, collection, started, finished)
            else:
                self._failed(job, error or "failed", started, finished, partial)
        finally:
            with self._lock:
                job.running_since = None
            self._workers.discard(threading.current_thread())
            self._wake.set()

    def _succeeded(
        self, job: Job, collection: Collection, started: datetime, finished: datetime
    ) -> None:
        c = job.collector
        self._keep(
            RunRecord(c.name, c.kind, c.target, started, finished, ok=True),
            collection,
        )
        with self._lock:
            job.runs += 1
            if job.up is False:
                log.warning("opscope serve: %s is back", c.name)
            job.up = True
            job.last_success = to_ts(started)
            job.last_error = None
        self.exposition.update(c.name, [*collection.metrics, *collection.exposed])

    def _failed(
        self,
        job: Job,
        error: str,
        started: datetime,
        finished: datetime,
        partial: Collection | None,
    ) -> None:
        c = job.collector
        self._keep(RunRecord(c.name, c.kind, c.target, started, finished, ok=False, error=error))
        with self._lock:
            if job.up is not False or job.last_error != error:
                log.warning("opscope serve: %s failed: %s", c.name, error)
            job.runs += 1
            job.errors += 1
            job.up = False
            job.last_error = error
        self.exposition.update(c.name, [*partial.metrics, *partial.exposed] if partial else [])

    def _keep(self, run: RunRecord, collection: Collection | None = None) -> None:
        if self.store is None:
            return
        try:
            self.store.record(
                run,
                metrics=collection.metrics if collection else (),
                snapshot_docs=collection.snapshots if collection else None,
                taken_at=collection.taken_at if collection else None,
                report=collection.report if collection else None,
            )
        except Exception as exc:  # the store down must not stop collecting or serving
            self.store_errors += 1
            message = redact(first_line(exc))
            if message != self.last_store_error:
                log.warning(
                    "opscope serve: the store could not keep %s: %s", run.collector, message
                )
            self.last_store_error = message
        else:
            self.last_store_error = None

"""What an area gives the service: collectors, which turn what they read into samples over
time, and analyses, which turn it into findings.

Both are small protocols. An area returns them from its plugin hooks
``register_collectors(config)`` and ``register_analyses(config)``, one per configured target,
so the service (and `opscope check`) run every area the same way and name none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from prometheus_client.metrics_core import Metric

from opscope.findings import Report


class CollectorError(Exception):
    """A collection failed for a reason the user can act on; the message is one line.

    `collection` holds what is still true while it fails (postgres_exporter's `pg_up 0`),
    exposed until the next run."""

    def __init__(self, message: str, collection: Collection | None = None) -> None:
        super().__init__(message)
        self.collection = collection


@dataclass
class Collection:
    """What one run of a collector read.

    `metrics` are exposed on /metrics until the collector's next run and stored as series
    (histogram buckets excepted: they are exposed only); `exposed` only on /metrics (per-
    object statistics whose history a snapshot keeps better). `snapshots` are documents of
    the area's own shape (JSON-able), kept in the store by `kind` for the analyses that
    replay history; `report` holds findings, when the collector evaluates checks."""

    metrics: list[Metric] = field(default_factory=list)
    exposed: list[Metric] = field(default_factory=list)
    snapshots: dict[str, Any] = field(default_factory=dict)
    report: Report | None = None
    #: the moment the data describes (the server's clock when it has one)
    taken_at: datetime | None = None


class StoredSnapshot(Protocol):
    @property
    def taken_at(self) -> datetime: ...

    @property
    def data(self) -> Any: ...


class History(Protocol):
    """What collectors and analyses may read back from the store: snapshots of a target by
    kind (after a restart of the service, what the previous process stored)."""

    def latest_snapshot(self, target: str, kind: str) -> tuple[datetime, Any] | None: ...

    def snapshot_before(
        self, target: str, kind: str, until: datetime | None
    ) -> StoredSnapshot | None: ...

    def snapshot_after(
        self, target: str, kind: str, since: datetime | None
    ) -> StoredSnapshot | None: ...


@dataclass(frozen=True)
class CollectContext:
    """What the scheduler (or `opscope check`) hands each run: the store, when there is
    one, and the clock."""

    history: History | None
    clock: Callable[[], datetime]


@runtime_checkable
class Collector(Protocol):
    """One source read on a schedule: `collect()` is called every `interval_s` (with jitter),
    and given up after `timeout_s`; a run that raises is recorded as a failure and the
    others go on."""

    #: unique in the service, e.g. "postgresql/warehouse"; it names the collector in
    #: /metrics (`collector` label), the JSON API and the store
    name: str
    #: the kind of target (the checks' kind), such as postgresql
    kind: str
    #: the configured target's name; sharding assigns (kind, target) to one instance. A
    #: collector may also set `local = True` (optional): it reads the machine the service
    #: runs on, so every instance runs its own, whatever its shard
    target: str
    interval_s: float
    timeout_s: float

    def collect(self, context: CollectContext) -> Collection: ...


@runtime_checkable
class Analysis(Protocol):
    """One library function call on one target (`analyze_database`, `analyze_api`, ...):
    `opscope check` runs each once; the service runs each on `serve.analysis_interval_s`
    and keeps its findings."""

    name: str
    kind: str
    target: str

    def run(self, context: CollectContext) -> Report: ...

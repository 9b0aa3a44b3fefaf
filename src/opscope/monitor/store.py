"""The history store: what collectors read, kept over time in SQLite or PostgreSQL.

One transaction per collector run (its run row, its points, its snapshots, its findings):
a process killed half-way leaves the store as it was before that run, never half of it.
SQLite runs in WAL mode with synchronous=FULL, so every committed run survives a crash of
the process (and of the machine); readers (`opscope analyze db --since`) never block it.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import psycopg
import sqlalchemy as sa
import zstandard
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from prometheus_client.metrics_core import Metric
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine

from opscope.errors import first_line
from opscope.findings import Report
from opscope.monitor.schema import findings, points, rollups, runs, series, snapshots
from opscope.monitor.settings import Retention, store_path
from opscope.redact import redact

ENCODING = "json+zstd"


class StoreError(Exception):
    """The store cannot be opened, migrated or read; one line, any password removed."""


def to_ts(moment: datetime) -> float:
    return moment.timestamp()


def from_ts(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def canonical_labels(labels: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(labels.items())), separators=(",", ":"), ensure_ascii=False)


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def encode_snapshot(data: Any) -> bytes:
    text = json.dumps(data, separators=(",", ":"), default=_json_default)
    return zstandard.ZstdCompressor(level=3).compress(text.encode("utf-8"))


def decode_snapshot(blob: bytes) -> Any:
    return json.loads(zstandard.ZstdDecompressor().decompress(blob).decode("utf-8"))


@dataclass(frozen=True)
class RunRecord:
    collector: str
    kind: str
    target: str
    started_at: datetime
    finished_at: datetime
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class StoredRun:
    id: int
    collector: str
    kind: str
    target: str
    started_at: datetime
    finished_at: datetime
    ok: bool
    error: str | None
    samples: int


@dataclass(frozen=True)
class Snapshot:
    taken_at: datetime
    data: Any


@dataclass
class SeriesData:
    name: str
    labels: dict[str, str]
    type: str
    #: (time, value); older than retention.raw: one per step (the mean of a gauge, the
    #: last value of a counter)
    points: list[tuple[datetime, float]] = field(default_factory=list)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _engine(url: str) -> Engine:
    path = store_path(url)
    if path is None:
        dsn = url

        def connect() -> Any:
            return psycopg.connect(dsn, connect_timeout=10, application_name="opscope serve")

        return sa.create_engine(
            "postgresql+psycopg://", creator=connect, pool_pre_ping=True, pool_size=4
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create {path.parent}: {exc.strerror or exc}") from None
    engine = sa.create_engine(f"sqlite:///{path}", pool_pre_ping=True)
    sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _alembic_config(connection: Connection) -> AlembicConfig:
    cfg = AlembicConfig()
    location = resources.files("opscope.monitor").joinpath("migrations")
    cfg.set_main_option("script_location", str(location))
    cfg.attributes["connection"] = connection
    return cfg


def describe_store(url: str) -> str:
    path = store_path(url)
    return str(path) if path is not None else redact(url)


class Store:
    """The store at `url` (a SQLite path or a postgresql:// DSN), migrated to the schema of
    this version when opened with `migrate=True`."""

    def __init__(self, url: str, engine: Engine) -> None:
        self.url = url
        self.engine = engine
        self._write = threading.Lock()
        self._series_ids: dict[tuple[str, str], int] = {}
        self.is_postgres = engine.dialect.name != "sqlite"

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Store:
        shown = describe_store(url)
        path = store_path(url)
        if not migrate and path is not None and not path.exists():
            # a reader never creates a store: an empty file would only hide the mistake
            raise StoreError(f"no history store at {shown} (is opscope serve running with it?)")
        try:
            engine = _engine(url)
            store = cls(url, engine)
            if migrate:
                store.migrate()
            else:
                store.check_schema()
        except StoreError:
            raise
        except (sa.exc.SQLAlchemyError, psycopg.Error, OSError) as exc:
            raise StoreError(f"cannot open the store {shown}: {redact(first_line(exc))}") from None
        return store

    def migrate(self) -> None:
        with self.engine.begin() as conn:
            if self.is_postgres:
                # two instances starting on one shared store must not both migrate it
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(7310931)"))
            command.upgrade(_alembic_config(conn), "head")

    def revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def check_schema(self) -> None:
        """Refuse a store that is missing or of another schema (reading without migrating)."""
        with self.engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
            head = ScriptDirectory.from_config(_alembic_config(conn)).get_current_head()
        if current is None:
            raise StoreError(
                f"{describe_store(self.url)} holds no opscope history (is opscope serve "
                "running with this store?)"
            )
        if current != head:
            raise StoreError(
                f"{describe_store(self.url)} has schema {current}, this opscope reads {head}: "
                "start opscope serve of this version once to migrate it"
            )

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    # --- writing ---------------------------------------------------------------------------

    def record(
        self,
        run: RunRecord,
        *,
        metrics: Sequence[Metric] = (),
        snapshot_docs: Mapping[str, Any] | None = None,
        taken_at: datetime | None = None,
        report: Report | None = None,
    ) -> int:
        """Keep one run and what it collected, in one transaction; the run's id."""
        at = to_ts(taken_at or run.finished_at)
        rows = [
            (m.name, m.type, s.name, canonical_labels(s.labels), float(s.value))
            for m in metrics
            for s in m.samples
            if not s.name.endswith("_bucket") and not math.isnan(s.value)
        ]
        with self._write, self.engine.begin() as conn:
            inserted = conn.execute(
                sa.insert(runs).values(
                    collector=run.collector,
                    kind=run.kind,
                    target=run.target,
                    started_at=to_ts(run.started_at),
                    finished_at=to_ts(run.finished_at),
                    ok=run.ok,
                    error=run.error,
                    samples=len(rows),
                )
            ).inserted_primary_key
            assert inserted is not None
            run_id = int(inserted[0])
            if rows:
                ids = self._ids(conn, {(name, labels): kind for _, kind, name, labels, _ in rows})
                values = [
                    {"series_id": ids[(name, labels)], "ts": at, "value": value}
                    for _, _, name, labels, value in rows
                ]
                conn.execute(self._insert_ignore(points), values)
            for kind, doc in (snapshot_docs or {}).items():
                conn.execute(
                    sa.insert(snapshots).values(
                        run_id=run_id,
                        target=run.target,
                        kind=kind,
                        taken_at=at,
                        encoding=ENCODING,
                        data=encode_snapshot(doc),
                    )
                )
            if report is not None and report.findings:
                conn.execute(
                    sa.insert(findings),
                    [
                        {
                            "run_id": run_id,
                            "target": f.target,
                            "kind": run.kind,
                            "check_id": f.check,
                            "severity": f.severity.value,
                            "fingerprint": f.id,
                            "object": f.object,
                            "title": f.title,
                            "data": f.model_dump_json(),
                            "seen_at": at,
                        }
                        for f in report.findings
                    ],
                )
        return run_id

    def _insert_ignore(self, table: sa.Table) -> Any:
        if self.is_postgres:
            return pg_dialect.insert(table).on_conflict_do_nothing()
        return sqlite_dialect.insert(table).on_conflict_do_nothing()

    def _ids(
        self, conn: Connection, wanted: Mapping[tuple[str, str], str]
    ) -> dict[tuple[str, str], int]:
        """Series ids of (name, labels), the missing ones created."""
        missing = [key for key in wanted if key not in self._series_ids]
        if missing:
            conn.execute(
                self._insert_ignore(series),
                [{"name": n, "labels": lab, "type": wanted[(n, lab)]} for n, lab in missing],
            )
            names = sorted({n for n, _ in missing})
            for chunk in _chunks(names, 500):
                for row in conn.execute(
                    sa.select(series.c.id, series.c.name, series.c.labels).where(
                        series.c.name.in_(chunk)
                    )
                ):
                    self._series_ids[(row.name, row.labels)] = int(row.id)
        return {key: self._series_ids[key] for key in wanted}

    def prune(self, now: datetime, retention: Retention) -> dict[str, int]:
        """Fold raw points older than `retention.raw` into rollups, drop what is older than
        each retention, thin old snapshots; how many rows each step touched."""
        step = max(int(retention.downsample_step), 1)
        cutoff = math.floor((to_ts(now) - retention.raw) / step) * step
        done: dict[str, int] = {}
        with self._write, self.engine.begin() as conn:
            done["rolled_up"] = self._roll_up(conn, cutoff, step)
            done["points_deleted"] = conn.execute(
                sa.delete(points).where(points.c.ts < cutoff)
            ).rowcount
            done["rollups_deleted"] = conn.execute(
                sa.delete(rollups).where(rollups.c.ts < to_ts(now) - retention.downsampled)
            ).rowcount
            done["snapshots_deleted"] = conn.execute(
                sa.delete(snapshots).where(snapshots.c.taken_at < to_ts(now) - retention.snapshots)
            ).rowcount
            done["snapshots_thinned"] = self._thin(
                conn, to_ts(now) - retention.raw, retention.snapshot_step
            )
            old = to_ts(now) - retention.events
            old_runs = sa.select(runs.c.id).where(runs.c.started_at < old)
            done["findings_deleted"] = conn.execute(
                sa.delete(findings).where(findings.c.run_id.in_(old_runs))
            ).rowcount
            conn.execute(
                sa.update(snapshots).where(snapshots.c.run_id.in_(old_runs)).values(run_id=None)
            )
            done["runs_deleted"] = conn.execute(
                sa.delete(runs).where(runs.c.started_at < old)
            ).rowcount
        return done

    def _roll_up(self, conn: Connection, cutoff: float, step: int) -> int:
        query = (
            sa.select(points.c.series_id, points.c.ts, points.c.value)
            .where(points.c.ts < cutoff)
            .order_by(points.c.series_id, points.c.ts)
        )
        folded: dict[tuple[int, float], list[float]] = {}
        for row in conn.execute(query):
            bucket = math.floor(row.ts / step) * step
            agg = folded.get((row.series_id, bucket))
            value = float(row.value)
            if agg is None:
                folded[(row.series_id, bucket)] = [1, value, value, value, value]
            else:
                agg[0] += 1
                agg[1] += value
                agg[2] = min(agg[2], value)
                agg[3] = max(agg[3], value)
                agg[4] = value
        if folded:
            conn.execute(
                self._insert_ignore(rollups),
                [
                    {
                        "series_id": sid,
                        "step_s": step,
                        "ts": bucket,
                        "count": int(a[0]),
                        "sum": a[1],
                        "min": a[2],
                        "max": a[3],
                        "last": a[4],
                    }
                    for (sid, bucket), a in folded.items()
                ],
            )
        return len(folded)

    def _thin(self, conn: Connection, before: float, step: float) -> int:
        """Keep the last snapshot of each step (per target and kind) among those older than
        `before`. The areas' snapshots carry counters accumulated across resets, so any two
        that remain still give the right difference."""
        rows = conn.execute(
            sa.select(snapshots.c.id, snapshots.c.target, snapshots.c.kind, snapshots.c.taken_at)
            .where(snapshots.c.taken_at < before)
            .order_by(snapshots.c.target, snapshots.c.kind, snapshots.c.taken_at)
        ).all()
        keep: dict[tuple[str, str, int], int] = {}
        for row in rows:
            keep[(row.target, row.kind, math.floor(row.taken_at / step))] = int(row.id)
        drop = [int(r.id) for r in rows if int(r.id) not in set(keep.values())]
        for chunk in _chunks(drop, 500):
            conn.execute(sa.delete(snapshots).where(snapshots.c.id.in_(chunk)))
        return len(drop)

    # --- reading ---------------------------------------------------------------------------

    def latest_snapshot(self, target: str, kind: str) -> tuple[datetime, Any] | None:
        found = self.snapshot_before(target, kind, None)
        return (found.taken_at, found.data) if found else None

    def snapshot_before(self, target: str, kind: str, until: datetime | None) -> Snapshot | None:
        """The latest snapshot taken at or before `until` (None: the latest of all)."""
        query = sa.select(snapshots.c.taken_at, snapshots.c.data).where(
            snapshots.c.target == target, snapshots.c.kind == kind
        )
        if until is not None:
            query = query.where(snapshots.c.taken_at <= to_ts(until))
        return self._one_snapshot(query.order_by(snapshots.c.taken_at.desc()))

    def snapshot_after(self, target: str, kind: str, since: datetime | None) -> Snapshot | None:
        """The earliest snapshot taken at or after `since` (None: the first of all)."""
        query = sa.select(snapshots.c.taken_at, snapshots.c.data).where(
            snapshots.c.target == target, snapshots.c.kind == kind
        )
        if since is not None:
            query = query.where(snapshots.c.taken_at >= to_ts(since))
        return self._one_snapshot(query.order_by(snapshots.c.taken_at.asc()))

    def _one_snapshot(self, query: Any) -> Snapshot | None:
        with self.engine.connect() as conn:
            row = conn.execute(query.limit(1)).first()
        if row is None:
            return None
        return Snapshot(from_ts(row.taken_at), decode_snapshot(row.data))

    def snapshots(
        self, target: str, kind: str, since: datetime | None = None, until: datetime | None = None
    ) -> Iterator[Snapshot]:
        query = sa.select(snapshots.c.taken_at, snapshots.c.data).where(
            snapshots.c.target == target, snapshots.c.kind == kind
        )
        if since is not None:
            query = query.where(snapshots.c.taken_at >= to_ts(since))
        if until is not None:
            query = query.where(snapshots.c.taken_at <= to_ts(until))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(snapshots.c.taken_at)).all()
        for row in rows:
            yield Snapshot(from_ts(row.taken_at), decode_snapshot(row.data))

    def snapshot_count(self, target: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(snapshots)
        if target is not None:
            query = query.where(snapshots.c.target == target)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def runs(
        self,
        collector: str | None = None,
        *,
        ok: bool | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[StoredRun]:
        query = sa.select(runs)
        if collector is not None:
            query = query.where(runs.c.collector == collector)
        if ok is not None:
            query = query.where(runs.c.ok == ok)
        if since is not None:
            query = query.where(runs.c.started_at >= to_ts(since))
        query = query.order_by(runs.c.started_at.desc(), runs.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [
                StoredRun(
                    id=int(r.id),
                    collector=r.collector,
                    kind=r.kind,
                    target=r.target,
                    started_at=from_ts(r.started_at),
                    finished_at=from_ts(r.finished_at),
                    ok=bool(r.ok),
                    error=r.error,
                    samples=int(r.samples),
                )
                for r in conn.execute(query)
            ]

    def current_findings(self, collectors: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The findings of the latest successful run of each analysis (or of `collectors`)."""
        # a run without findings is the latest word too: what it no longer finds is gone
        latest = (
            sa.select(sa.func.max(runs.c.id).label("id"))
            .where(runs.c.ok.is_(True))
            .group_by(runs.c.collector)
        )
        if collectors is not None:
            latest = latest.where(runs.c.collector.in_(list(collectors)))
        query = (
            sa.select(findings.c.data)
            .where(findings.c.run_id.in_(latest))
            .order_by(findings.c.target, findings.c.id)
        )
        with self.engine.connect() as conn:
            return [json.loads(row.data) for row in conn.execute(query)]

    def series_names(self) -> list[str]:
        with self.engine.connect() as conn:
            return [
                r.name
                for r in conn.execute(sa.select(series.c.name).distinct().order_by(series.c.name))
            ]

    def series(
        self,
        name: str,
        matchers: Mapping[str, str] | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        max_series: int = 200,
        max_points: int = 20_000,
    ) -> list[SeriesData]:
        """The points of every series of `name` whose labels include `matchers`."""
        matchers = dict(matchers or {})
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(series.c.id, series.c.labels, series.c.type)
                .where(series.c.name == name)
                .order_by(series.c.id)
            ).all()
            chosen: list[tuple[int, SeriesData]] = []
            for row in rows:
                labels = json.loads(row.labels)
                if all(labels.get(k) == v for k, v in matchers.items()):
                    chosen.append((int(row.id), SeriesData(name, labels, row.type)))
                if len(chosen) >= max_series:
                    break
            budget = max_points
            for sid, data in chosen:
                data.points.extend(self._rolled(conn, sid, data.type, since, until, budget))
                query = sa.select(points.c.ts, points.c.value).where(points.c.series_id == sid)
                if since is not None:
                    query = query.where(points.c.ts >= to_ts(since))
                if until is not None:
                    query = query.where(points.c.ts <= to_ts(until))
                budget -= len(data.points)
                data.points.extend(
                    (from_ts(r.ts), float(r.value))
                    for r in conn.execute(query.order_by(points.c.ts).limit(max(budget, 0)))
                )
                budget = max_points - sum(len(d.points) for _, d in chosen)
        return [data for _, data in chosen]

    def _rolled(
        self,
        conn: Connection,
        sid: int,
        kind: str,
        since: datetime | None,
        until: datetime | None,
        limit: int,
    ) -> list[tuple[datetime, float]]:
        query = sa.select(rollups).where(rollups.c.series_id == sid)
        if since is not None:
            query = query.where(rollups.c.ts >= to_ts(since))
        if until is not None:
            query = query.where(rollups.c.ts <= to_ts(until))
        out = []
        for r in conn.execute(query.order_by(rollups.c.ts).limit(max(limit, 0))):
            value = r.last if kind == "counter" else r.sum / r.count
            out.append((from_ts(r.ts), float(value)))
        return out


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def open_for_reading(url: str) -> Store:
    """The store as `opscope analyze db --since` reads it: never migrated by a reader."""
    return Store.open(url, migrate=False)

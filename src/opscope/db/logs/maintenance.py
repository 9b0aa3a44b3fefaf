"""Autovacuum and checkpoint entries (`log_autovacuum_min_duration`, `log_checkpoints`).

The parsers hand over a LOG message that starts with one of `MAINTENANCE_HEADS` (checked
after every statement form, so statement entries never pay for it). The messages, as
PostgreSQL 13 to 18 write them:

- `automatic [aggressive ]vacuum [to prevent wraparound ]of table "db.schema.table": index
  scans: N` then lines `pages: …`, `tuples: R removed, K remain, D are dead but not yet
  removable[, oldest xmin: X]`, `buffer usage: H hits, M misses|reads, D dirtied` (reads
  from 17), `avg read rate: … MB/s, avg write rate: … MB/s`, 18's `delay time: … ms`
  (track_cost_delay_timing), and `system usage: CPU: user: U s, system: S s, elapsed: E s`;
- `automatic analyze of table "db.schema.table"`, with the same `system usage:` (13 puts it
  on the first line);
- `checkpoint starting: FLAGS` (`time`, `wal` — `xlog` in old releases —, `immediate force wait`,
  `shutdown immediate`, …) and `checkpoint complete: wrote N buffers (P%)[, wrote N SLRU
  buffers]; … write=W s, sync=S s, total=T s; … distance=D kB, estimate=E kB[; lsn=…]`,
  and the same with `restartpoint` on a standby;
- `checkpoints are occurring too frequently (N seconds apart)`.

Per-table figures merge in any order. Checkpoint intervals need the entries in time order:
a chunk keeps its checkpoint entries as they came (a few per chunk), and they are folded
into the running figures when chunks are merged, which the merger does in file order.
"""

from __future__ import annotations

import collections
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: what a maintenance message starts with; a tuple, so one `str.startswith` call tests all
MAINTENANCE_HEADS = ("automatic ", "checkpoint", "restartpoint")

#: tables tracked, at most; autovacuum of the others is counted in one "other" entry
MAX_TABLES = 2_000
OTHER_TABLE = "(tables beyond the tracked limit)"
#: intervals are counted per whole second up to this; longer ones in its bucket
MAX_INTERVAL_BUCKET = 24 * 3600
#: checkpoint entries a chunk holds before they are folded (a chunk has a few)
MAX_PENDING_EVENTS = 100_000
#: the most WAL written within each of these spans (seconds; checkpoint_timeout's common
#: values) is kept: what a max_wal_size must hold for checkpoints to come by time, which a
#: burst's rate alone would overstate
WAL_WINDOWS = (300, 600, 900, 1800, 3600)

_NUMBER = r"(\d+(?:\.\d+)?)"
_VACUUM_HEAD = re.compile(
    r"automatic (aggressive )?(vacuum|analyze)( to prevent wraparound)? of table "
    r'"([^\n]*?)"(?=$|:|\s)'
)
_INDEX_SCANS = re.compile(r"index scans: (\d+)")
_PAGES = re.compile(r"pages: (\d+) removed, (\d+) remain(?:, (\d+) scanned)?")
_TUPLES = re.compile(r"tuples: (\d+) removed, (\d+) remain, (\d+) are dead but not yet removable")
_BUFFERS = re.compile(r"buffer usage: (\d+) hits, (\d+) (?:misses|reads), (\d+) dirtied")
_RATES = re.compile(rf"avg read rate: {_NUMBER} MB/s, avg write rate: {_NUMBER} MB/s")
_DELAY = re.compile(rf"delay time: {_NUMBER} ms")
_USAGE = re.compile(rf"CPU: user: {_NUMBER} s, system: {_NUMBER} s, elapsed: {_NUMBER} s")
_CHECKPOINT = re.compile(r"(checkpoint|restartpoint) (starting|complete):")
_WROTE = re.compile(r"wrote (\d+) buffers")
_TIMES = re.compile(rf"write={_NUMBER} s, sync={_NUMBER} s, total={_NUMBER} s")
_DISTANCE = re.compile(r"distance=(\d+) kB, estimate=(\d+) kB")
_TOO_FREQUENT = re.compile(r"checkpoints are occurring too frequently \((\d+) seconds? apart\)")


def trigger(flags: str) -> str:
    """What started a checkpoint, from the flags of its `starting:` line: `wal` (max_wal_size
    filled; `xlog` in old releases), `time` (checkpoint_timeout), `shutdown` (also
    end-of-recovery) or `requested` (CHECKPOINT, CREATE DATABASE, a base backup…)."""
    words = flags.split()
    if "shutdown" in words or "end-of-recovery" in words:
        return "shutdown"
    if "wal" in words or "xlog" in words:
        return "wal"
    if "time" in words:
        return "time"
    return "requested"


def seconds(ts: str) -> float | None:
    """A log timestamp (`2026-12-01 12:39:24.543 UTC`) as seconds, for intervals within one
    log; the zone is left out (a server writes one), None when it does not read."""
    space = ts.find(" ", 11)
    try:
        moment = datetime.fromisoformat(ts[:space] if space > 0 else ts)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


@dataclass(slots=True)
class VacuumRun:
    """The figures of one autovacuum or autoanalyze entry; absent ones are None."""

    ts: str
    kind: str  # "vacuum" or "analyze"
    database: str
    table: str
    elapsed_s: float | None = None
    cpu_s: float | None = None
    aggressive: bool = False
    wraparound: bool = False
    index_scans: int | None = None
    pages_removed: int | None = None
    pages_remain: int | None = None
    pages_scanned: int | None = None
    tuples_removed: int | None = None
    tuples_remain: int | None = None
    dead_not_removable: int | None = None
    buffer_hits: int | None = None
    buffer_misses: int | None = None
    buffer_dirtied: int | None = None
    read_mb_s: float | None = None
    write_mb_s: float | None = None
    delay_ms: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            name: getattr(self, name)
            for name in self.__slots__
            if name not in ("database", "table", "kind")
        }


def parse_vacuum(ts: str, message: str) -> VacuumRun | None:
    """The run an `automatic vacuum/analyze of table` message describes, or None when the
    message is no such entry."""
    head = _VACUUM_HEAD.match(message)
    if head is None:
        return None
    name = head.group(4)
    database, dot, table = name.partition(".")
    run = VacuumRun(
        ts,
        head.group(2),
        database if dot else "",
        table if dot else name,
        aggressive=head.group(1) is not None,
        wraparound=head.group(3) is not None,
    )
    rest = message[head.end() :]
    if (m := _USAGE.search(rest)) is not None:
        run.cpu_s = float(m.group(1)) + float(m.group(2))
        run.elapsed_s = float(m.group(3))
    if run.kind == "vacuum":
        if (m := _INDEX_SCANS.match(rest, 2 if rest.startswith(": ") else 0)) is not None:
            run.index_scans = int(m.group(1))
        if (m := _PAGES.search(rest)) is not None:
            run.pages_removed, run.pages_remain = int(m.group(1)), int(m.group(2))
            run.pages_scanned = int(m.group(3)) if m.group(3) is not None else None
        if (m := _TUPLES.search(rest)) is not None:
            run.tuples_removed, run.tuples_remain = int(m.group(1)), int(m.group(2))
            run.dead_not_removable = int(m.group(3))
        if (m := _DELAY.search(rest)) is not None:
            run.delay_ms = float(m.group(1))
    if (m := _BUFFERS.search(rest)) is not None:
        run.buffer_hits, run.buffer_misses = int(m.group(1)), int(m.group(2))
        run.buffer_dirtied = int(m.group(3))
    if (m := _RATES.search(rest)) is not None:
        run.read_mb_s, run.write_mb_s = float(m.group(1)), float(m.group(2))
    return run


@dataclass(slots=True)
class Checkpoint:
    """A `checkpoint starting:` (flags set) or `checkpoint complete:` (figures set) entry."""

    ts: str
    complete: bool
    restartpoint: bool = False
    flags: str = ""
    buffers: int | None = None
    write_s: float | None = None
    sync_s: float | None = None
    total_s: float | None = None
    distance_kb: int | None = None
    estimate_kb: int | None = None


def parse_checkpoint(ts: str, message: str) -> Checkpoint | None:
    m = _CHECKPOINT.match(message)
    if m is None:
        return None
    rest = message[m.end() :]
    restart = m.group(1) == "restartpoint"
    if m.group(2) == "starting":
        return Checkpoint(ts, False, restart, " ".join(rest.split()))
    point = Checkpoint(ts, True, restart)
    if (w := _WROTE.search(rest)) is not None:
        point.buffers = int(w.group(1))
    if (t := _TIMES.search(rest)) is not None:
        point.write_s, point.sync_s = float(t.group(1)), float(t.group(2))
        point.total_s = float(t.group(3))
    if (d := _DISTANCE.search(rest)) is not None:
        point.distance_kb, point.estimate_kb = int(d.group(1)), int(d.group(2))
    return point


@dataclass
class TableMaintenance:
    """Autovacuum and autoanalyze of one table, summed over the log."""

    database: str
    table: str
    vacuums: int = 0
    vacuum_s: float = 0.0
    vacuum_max_s: float = 0.0
    analyzes: int = 0
    analyze_s: float = 0.0
    analyze_max_s: float = 0.0
    tuples_removed: int = 0
    pages_removed: int = 0
    aggressive: int = 0
    wraparound: int = 0
    #: the longest vacuum run, whole
    slowest: VacuumRun | None = None

    def add(self, run: VacuumRun) -> None:
        elapsed = run.elapsed_s or 0.0
        if run.kind == "analyze":
            self.analyzes += 1
            self.analyze_s += elapsed
            self.analyze_max_s = max(self.analyze_max_s, elapsed)
            return
        self.vacuums += 1
        self.vacuum_s += elapsed
        self.tuples_removed += run.tuples_removed or 0
        self.pages_removed += run.pages_removed or 0
        self.aggressive += run.aggressive
        self.wraparound += run.wraparound
        if self.slowest is None or elapsed > self.vacuum_max_s:
            self.vacuum_max_s = elapsed
            self.slowest = run

    def merge(self, other: TableMaintenance) -> None:
        self.vacuums += other.vacuums
        self.vacuum_s += other.vacuum_s
        self.analyzes += other.analyzes
        self.analyze_s += other.analyze_s
        self.analyze_max_s = max(self.analyze_max_s, other.analyze_max_s)
        self.tuples_removed += other.tuples_removed
        self.pages_removed += other.pages_removed
        self.aggressive += other.aggressive
        self.wraparound += other.wraparound
        if other.slowest is not None and (
            self.slowest is None or other.vacuum_max_s > self.vacuum_max_s
        ):
            self.vacuum_max_s = other.vacuum_max_s
            self.slowest = other.slowest

    def to_json(self) -> dict[str, Any]:
        return {
            "database": self.database or None,
            "table": self.table,
            "vacuums": self.vacuums,
            "vacuum_total_s": round(self.vacuum_s, 3),
            "vacuum_max_s": round(self.vacuum_max_s, 3),
            "analyzes": self.analyzes,
            "analyze_total_s": round(self.analyze_s, 3),
            "analyze_max_s": round(self.analyze_max_s, 3),
            "tuples_removed": self.tuples_removed,
            "pages_removed": self.pages_removed,
            "aggressive": self.aggressive,
            "wraparound": self.wraparound,
            "slowest_vacuum": self.slowest.to_json() if self.slowest is not None else None,
        }


TRIGGERS = ("time", "wal", "requested", "shutdown")


@dataclass
class CheckpointStats:
    """Checkpoints (and restartpoints) as the log shows them, folded in time order."""

    started: int = 0
    completed: int = 0
    restartpoints: int = 0
    by_trigger: dict[str, int] = field(default_factory=dict)
    #: the flags as logged ("immediate force wait"), counted
    by_flags: dict[str, int] = field(default_factory=dict)
    buffers: int = 0
    write_s: float = 0.0
    sync_s: float = 0.0
    total_s: float = 0.0
    max_total_s: float = 0.0
    distance_kb: int = 0
    max_distance_kb: int = 0
    #: seconds between an automatic (time or WAL) checkpoint's start and the start before
    #: it, counted per whole second
    intervals: dict[int, int] = field(default_factory=dict)
    #: the same for checkpoints started by WAL, and the WAL those wrote in that time
    wal_intervals: int = 0
    wal_interval_s: float = 0.0
    wal_distance_kb: int = 0
    #: `checkpoints are occurring too frequently` warnings (checkpoint_warning)
    too_frequent: int = 0
    too_frequent_min_s: int | None = None
    first_ts: str = ""
    last_ts: str = ""
    # the previous start and the start waiting for its `complete:` line
    _last_start: float | None = None
    _last_trigger: str = ""
    _pending: tuple[str, float | None, float | None] | None = None
    #: the most WAL (kB) between checkpoints that started within each of WAL_WINDOWS
    window_max_kb: dict[int, int] = field(default_factory=dict)
    _windows: dict[int, collections.deque[tuple[float, int]]] = field(default_factory=dict)
    _window_sums: dict[int, int] = field(default_factory=dict)

    def apply(self, point: Checkpoint) -> None:
        moment = seconds(point.ts)
        if point.ts:
            self.first_ts = self.first_ts or point.ts
            self.last_ts = point.ts
        if not point.complete:
            self.started += 1
            self.restartpoints += point.restartpoint
            kind = trigger(point.flags)
            _bump(self.by_trigger, kind)
            _bump(self.by_flags, point.flags or "(none)")
            interval: float | None = None
            if (
                moment is not None
                and self._last_start is not None
                and self._last_trigger != "shutdown"  # the server was down in between
                and moment >= self._last_start
            ):
                interval = moment - self._last_start
                if kind in ("time", "wal"):
                    bucket = min(int(interval), MAX_INTERVAL_BUCKET)
                    self.intervals[bucket] = self.intervals.get(bucket, 0) + 1
            self._last_start, self._last_trigger = moment, kind
            self._pending = (kind, interval, moment)
            return
        self.completed += 1
        self.buffers += point.buffers or 0
        self.write_s += point.write_s or 0.0
        self.sync_s += point.sync_s or 0.0
        total = point.total_s or 0.0
        self.total_s += total
        self.max_total_s = max(self.max_total_s, total)
        distance = point.distance_kb or 0
        self.distance_kb += distance
        self.max_distance_kb = max(self.max_distance_kb, distance)
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] == "wal" and pending[1] is not None:
            self.wal_intervals += 1
            self.wal_interval_s += pending[1]
            self.wal_distance_kb += distance
        if pending is not None and pending[2] is not None:
            self._window(pending[2], distance)

    def _window(self, moment: float, distance: int) -> None:
        for span in WAL_WINDOWS:
            recent = self._windows.get(span)
            if recent is None:
                recent = self._windows[span] = collections.deque()
            recent.append((moment, distance))
            total = self._window_sums.get(span, 0) + distance
            while recent[0][0] <= moment - span:
                total -= recent.popleft()[1]
            self._window_sums[span] = total
            if total > self.window_max_kb.get(span, 0):
                self.window_max_kb[span] = total

    def wal_per_kb(self, span_s: float) -> int | None:
        """The most WAL (kB) written within `span_s` seconds, from the smallest kept window
        at least that long (scaled from the longest for a span beyond it)."""
        for span in WAL_WINDOWS:
            if span >= span_s and span in self.window_max_kb:
                return self.window_max_kb[span]
        longest = self.window_max_kb.get(WAL_WINDOWS[-1])
        return None if longest is None else math.ceil(longest * span_s / WAL_WINDOWS[-1])

    def warned(self, ts: str, apart_s: int) -> None:
        self.too_frequent += 1
        if self.too_frequent_min_s is None or apart_s < self.too_frequent_min_s:
            self.too_frequent_min_s = apart_s

    def merge_unordered(self, other: CheckpointStats) -> None:
        """Add figures folded elsewhere (no interval across the two is known)."""
        for name in (
            "started", "completed", "restartpoints", "buffers", "write_s", "sync_s",
            "total_s", "distance_kb", "wal_intervals", "wal_interval_s", "wal_distance_kb",
            "too_frequent",
        ):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.max_total_s = max(self.max_total_s, other.max_total_s)
        self.max_distance_kb = max(self.max_distance_kb, other.max_distance_kb)
        for mine, theirs in ((self.by_trigger, other.by_trigger), (self.by_flags, other.by_flags)):
            for key, n in theirs.items():
                mine[key] = mine.get(key, 0) + n
        for bucket, n in other.intervals.items():
            self.intervals[bucket] = self.intervals.get(bucket, 0) + n
        for span, kb in other.window_max_kb.items():
            self.window_max_kb[span] = max(self.window_max_kb.get(span, 0), kb)
        if other.too_frequent_min_s is not None:
            self.warned("", other.too_frequent_min_s)
            self.too_frequent -= 1
        if other.first_ts and (not self.first_ts or other.first_ts < self.first_ts):
            self.first_ts = other.first_ts
        if other.last_ts > self.last_ts:
            self.last_ts = other.last_ts

    def interval_quantile(self, q: float) -> float | None:
        """The nearest-rank quantile of the automatic checkpoints' intervals (seconds)."""
        count = sum(self.intervals.values())
        if not count:
            return None
        rank = max(1, math.ceil(q * count))
        seen = 0
        for bucket in sorted(self.intervals):
            seen += self.intervals[bucket]
            if seen >= rank:
                return float(bucket)
        return None  # not reached: counts add up

    @property
    def interval_count(self) -> int:
        return sum(self.intervals.values())

    def wal_rate_kb_s(self) -> float | None:
        """WAL written per second while checkpoints were started by WAL."""
        if not self.wal_intervals or self.wal_interval_s <= 0:
            return None
        return self.wal_distance_kb / self.wal_interval_s


@dataclass
class Maintenance:
    """What autovacuum and checkpoint entries showed; one per Aggregate."""

    tables: dict[tuple[str, str], TableMaintenance] = field(default_factory=dict)
    checkpoints: CheckpointStats = field(default_factory=CheckpointStats)
    #: this chunk's checkpoint entries in log order, not yet folded into `checkpoints`
    events: list[Checkpoint | tuple[str, int]] = field(default_factory=list)

    def vacuum(self, run: VacuumRun) -> None:
        key = (run.database, run.table)
        table = self.tables.get(key)
        if table is None:
            if len(self.tables) >= MAX_TABLES:
                key = ("", OTHER_TABLE)
                table = self.tables.get(key)
            if table is None:
                table = self.tables[key] = TableMaintenance(*key)
        table.add(run)

    def event(self, item: Checkpoint | tuple[str, int]) -> None:
        self.events.append(item)
        if len(self.events) >= MAX_PENDING_EVENTS:
            self.fold()

    def fold(self) -> None:
        """Fold the pending checkpoint entries into the running figures, in order."""
        stats = self.checkpoints
        for item in self.events:
            if isinstance(item, Checkpoint):
                stats.apply(item)
            else:
                stats.warned(*item)
        self.events = []

    def merge(self, other: Maintenance) -> None:
        """`other` comes after this one in the log (the merger merges in file order)."""
        for key, table in other.tables.items():
            mine = self.tables.get(key)
            if mine is not None:
                mine.merge(table)
            elif len(self.tables) < MAX_TABLES or key == ("", OTHER_TABLE):
                self.tables[key] = table
            else:
                other_key = ("", OTHER_TABLE)
                self.tables.setdefault(other_key, TableMaintenance(*other_key)).merge(table)
        self.fold()
        if other.checkpoints.started or other.checkpoints.completed:
            self.checkpoints.merge_unordered(other.checkpoints)
        self.events = list(other.events)
        self.fold()

    @property
    def seen(self) -> bool:
        stats = self.checkpoints
        return bool(self.tables or self.events or stats.started or stats.completed)

    def summary(self, first_ts: str = "", last_ts: str = "", top: int = 20) -> dict[str, Any]:
        """`summary.log.maintenance`: per-table autovacuum, and checkpoints; the log's
        first and last times give the span checkpoints per hour are counted over."""
        self.fold()
        stats = self.checkpoints
        tables = sorted(self.tables.values(), key=lambda t: (-t.vacuum_s, -t.analyze_s, t.table))
        start = seconds(first_ts or stats.first_ts)
        end = seconds(last_ts or stats.last_ts)
        hours = (end - start) / 3600 if start is not None and end is not None else 0.0
        automatic = stats.by_trigger.get("time", 0) + stats.by_trigger.get("wal", 0)
        rate = stats.wal_rate_kb_s()
        median = stats.interval_quantile(0.5)
        return {
            "autovacuum": {
                "tables": len(self.tables),
                "vacuums": sum(t.vacuums for t in self.tables.values()),
                "analyzes": sum(t.analyzes for t in self.tables.values()),
                "vacuum_total_s": round(sum(t.vacuum_s for t in self.tables.values()), 3),
                "tuples_removed": sum(t.tuples_removed for t in self.tables.values()),
                "by_table": [t.to_json() for t in tables[:top]],
            },
            "checkpoints": {
                "started": stats.started,
                "completed": stats.completed,
                "restartpoints": stats.restartpoints,
                "hours": round(hours, 3),
                "per_hour": round(stats.started / hours, 2) if hours > 0 else None,
                "by_trigger": {k: stats.by_trigger.get(k, 0) for k in TRIGGERS},
                "by_flags": dict(sorted(stats.by_flags.items(), key=lambda kv: -kv[1])),
                "wal_share": round(stats.by_trigger.get("wal", 0) / automatic, 3)
                if automatic
                else None,
                "mean_total_s": round(stats.total_s / stats.completed, 3)
                if stats.completed
                else None,
                "max_total_s": round(stats.max_total_s, 3),
                "mean_write_s": round(stats.write_s / stats.completed, 3)
                if stats.completed
                else None,
                "mean_sync_s": round(stats.sync_s / stats.completed, 3)
                if stats.completed
                else None,
                "buffers_written": stats.buffers,
                "mean_distance_kb": round(stats.distance_kb / stats.completed)
                if stats.completed
                else None,
                "max_distance_kb": stats.max_distance_kb,
                "intervals": stats.interval_count,
                "interval_p50_s": median,
                "interval_min_s": stats.interval_quantile(0.0),
                "wal_kb_per_s": round(rate, 1) if rate is not None else None,
                "too_frequent_warnings": stats.too_frequent,
                "too_frequent_min_s": stats.too_frequent_min_s,
            },
        }


def _bump(counts: dict[str, int], key: str) -> None:
    if len(counts) < 50 or key in counts:
        counts[key] = counts.get(key, 0) + 1


def parse_maintenance(ts: str, message: str) -> VacuumRun | Checkpoint | tuple[str, int] | None:
    """A LOG message that starts with one of MAINTENANCE_HEADS as what it reports: a vacuum
    or analyze run, a checkpoint, or the server's "too frequently" warning (its time and
    the seconds it gives); None for other messages that merely start alike."""
    if message[0] == "a":
        return parse_vacuum(ts, message)
    checkpoint = parse_checkpoint(ts, message)
    if checkpoint is not None:
        return checkpoint
    warning = _TOO_FREQUENT.match(message)
    return None if warning is None else (ts, int(warning.group(1)))

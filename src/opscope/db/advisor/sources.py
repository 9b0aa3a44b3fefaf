"""The advisor's workload from every source Dexter takes: statements given on the command
line or in SQL files, server logs (the reader of `opscope logs`, each statement weighed by
its logged durations), and samples of pg_stat_activity; or pg_stat_statements, filtered.

Each source becomes the same records as pg_stat_statements' (`Statement`, keyed by the
fingerprint PostgreSQL's parser gives the statement, as `opscope logs` groups them), with a
literal example (`Sample`) to plan when the text has constants, so every later step of the
advisor is the one pg_stat_statements' workload takes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
from pglast import split

from opscope.db.logs.analyze import aggregate_logs
from opscope.db.logs.examples import parse_parameters
from opscope.db.logs.normalize import normalize
from opscope.db.logs.options import LogOptions
from opscope.db.plans.samples import Sample
from opscope.db.statements import Statement, StatementSnapshot


class WorkloadError(Exception):
    """A source cannot be read (a missing file, SQL that does not split); one line."""


@dataclass(frozen=True)
class WorkloadSources:
    statements: tuple[str, ...] = ()
    sql_files: tuple[Path, ...] = ()
    logs: tuple[str, ...] = ()
    #: seconds to sample pg_stat_activity for
    activity_s: float | None = None
    min_calls: int = 1
    #: statements whose total time is below this (ms) are left out
    min_time_ms: float = 0.0

    @property
    def given(self) -> bool:
        """A source other than pg_stat_statements was named."""
        return bool(self.statements or self.sql_files or self.logs or self.activity_s)


@dataclass
class _Group:
    query: str
    example: Sample
    calls: int = 0
    total_ms: float = 0.0


def queryid_of(key: str) -> int:
    """A signed 64-bit id from the fingerprint (pg_stat_statements' queryid is one too)."""
    value = int(key[:16], 16) if all(c in "0123456789abcdef" for c in key[:16]) else hash(key)
    return value - (1 << 64) if value >= 1 << 63 else value


def _record(group: _Group, key: str) -> Statement:
    mean = group.total_ms / group.calls if group.calls else 0.0
    return Statement(
        queryid=queryid_of(key),
        userid=0,
        username=None,
        toplevel=True,
        query=group.query,
        calls=group.calls,
        total_exec_time=group.total_ms,
        min_exec_time=mean,
        max_exec_time=mean,
        mean_exec_time=mean,
        stddev_exec_time=0.0,
        rows=0,
        shared_blks_hit=0,
        shared_blks_read=0,
        temp_blks_read=0,
        temp_blks_written=0,
    )


class _Collector:
    def __init__(self) -> None:
        self.groups: dict[str, _Group] = {}

    def add(self, text: str, calls: int, total_ms: float, example: Sample | None = None) -> None:
        key, display = normalize(text)
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = _Group(display, example or Sample(text))
        group.calls += calls
        group.total_ms += total_ms

    def snapshot(self, window_s: float | None) -> tuple[StatementSnapshot, dict[int, Sample]]:
        statements = tuple(_record(g, k) for k, g in self.groups.items())
        examples = {queryid_of(k): g.example for k, g in self.groups.items()}
        return StatementSnapshot(time.monotonic(), None, statements, window_s), examples


def split_statements(text: str, where: str) -> list[str]:
    try:
        return [s.strip() for s in split(text) if s.strip()]
    except Exception as exc:  # pglast's ParseError: the file is not SQL it can split
        raise WorkloadError(f"{where}: not SQL PostgreSQL can parse: {exc}") from None


def from_logs(collect: _Collector, paths: Sequence[str], database: str | None) -> None:
    """Each statement group of the logs, with its logged calls and durations; the slowest
    execution (its literal text, or its text and bind parameters) is what gets planned.
    Entries of other databases are left out; a log whose lines do not name the database
    (no %d in log_line_prefix) counts whole, read a second time (not stdin, read once)."""
    aggregate = aggregate_logs(paths, LogOptions(database=database))[0]
    if not aggregate.statements and database and "-" not in paths:
        aggregate = aggregate_logs(paths, LogOptions())[0]
    for stats in aggregate.statements.values():
        if stats.slowest is None or stats.calls <= 0:
            continue
        slowest = stats.slowest
        values = parse_parameters(slowest.parameters) if slowest.parameters else None
        params = (
            tuple(v for v in values if v is not None)
            if values is not None and None not in values
            else None
        )
        example = Sample(slowest.query, params)
        key, display = normalize(slowest.query)
        group = collect.groups.get(key)
        if group is None:
            group = collect.groups[key] = _Group(display, example)
        group.calls += stats.calls
        group.total_ms += stats.total


_ACTIVITY = (
    "SELECT /* opscope */ pid, query_start, query FROM pg_stat_activity "
    "WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid() "
    "AND backend_type = 'client backend' AND application_name <> %s AND query <> ''"
)


def from_activity(
    collect: _Collector,
    conn: psycopg.Connection[Any],
    seconds: float,
    own_name: str,
    *,
    every_s: float = 0.05,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """What the sessions of this database run, sampled every `every_s` for `seconds`: an
    execution is a (pid, query_start), its time how long it was seen running."""
    seen: dict[tuple[int, Any], tuple[str, float, float]] = {}
    end = clock() + seconds
    while True:
        now = clock()
        for pid, started, query in conn.execute(_ACTIVITY, [own_name]).fetchall():
            first = seen.get((pid, started))
            seen[(pid, started)] = (str(query), first[1] if first else now, now)
        if now >= end:
            break
        sleep(min(every_s, max(end - now, 0.0)))
    for query, since, last in seen.values():
        collect.add(query, 1, max(last - since, every_s) * 1000)


def gather(
    sources: WorkloadSources,
    conn: psycopg.Connection[Any],
    *,
    database: str | None,
    own_name: str = "opscope",
) -> tuple[StatementSnapshot, dict[int, Sample]]:
    """The workload of the sources named (each statement given counts as one call)."""
    collect = _Collector()
    for text in sources.statements:
        for stmt in split_statements(text, "--statement"):
            collect.add(stmt, 1, 0.0)
    for path in sources.sql_files:
        try:
            content = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise WorkloadError(
                f"--sql-file {path}: {getattr(exc, 'strerror', None) or exc}"
            ) from None
        for stmt in split_statements(content, f"--sql-file {path}"):
            collect.add(stmt, 1, 0.0)
    if sources.logs:
        from_logs(collect, sources.logs, database)
    if sources.activity_s:
        from_activity(collect, conn, sources.activity_s, own_name)
    return collect.snapshot(sources.activity_s)


def filtered(snapshot: StatementSnapshot, sources: WorkloadSources) -> StatementSnapshot:
    """`--min-calls` and `--min-time`: statements called less, or for less time, are not
    the workload."""
    keep: Iterable[Statement] = (
        s
        for s in snapshot.statements
        if s.calls >= sources.min_calls and s.total_exec_time >= sources.min_time_ms
    )
    return replace(snapshot, statements=tuple(keep))

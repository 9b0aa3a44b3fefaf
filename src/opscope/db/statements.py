"""pg_stat_statements as typed records, and the difference of two snapshots.

Cumulative counters describe everything since the last reset; `--window` takes two snapshots
and keeps only what happened between them, so the numbers reflect current load.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import psycopg
from psycopg import sql

from opscope.checks import CheckFailed
from opscope.db.connection import SqlRunner, load_sql

ENABLE_HINT = (
    "pg_stat_statements is not available: add it to shared_preload_libraries, restart the "
    "server, then run CREATE EXTENSION pg_stat_statements in this database"
)


# DDL and maintenance are slow by nature and not what a workload review is after; they are
# left out of slow_query (a DBA sees them in the server log instead).
_MAINTENANCE = re.compile(
    r"^\s*(?:/\*.*?\*/\s*|--[^\n]*\n\s*)*"
    r"(CREATE|ALTER|DROP|VACUUM|ANALYZE|ANALYSE|REINDEX|CLUSTER|CHECKPOINT|GRANT|REVOKE|"
    r"COMMENT|TRUNCATE|REFRESH|LOCK|BEGIN|START|COMMIT|END|ROLLBACK|SAVEPOINT|RELEASE|SET|"
    r"RESET|SHOW|DISCARD|DEALLOCATE|PREPARE|LISTEN|NOTIFY|UNLISTEN|SECURITY|IMPORT|LOAD)\b",
    re.IGNORECASE | re.DOTALL,
)


def is_maintenance(query: str) -> bool:
    return _MAINTENANCE.match(query) is not None


@dataclass(frozen=True)
class Statement:
    queryid: int
    userid: int
    username: str | None
    toplevel: bool
    query: str
    calls: int
    total_exec_time: float
    min_exec_time: float
    max_exec_time: float
    mean_exec_time: float
    stddev_exec_time: float
    rows: int
    shared_blks_hit: int
    shared_blks_read: int
    temp_blks_read: int
    temp_blks_written: int
    #: WAL the statement wrote
    wal_bytes: int = 0
    #: time spent reading and writing data blocks (0 unless track_io_timing is on)
    read_time_ms: float = 0.0
    write_time_ms: float = 0.0
    #: since when this entry counts (pg_stat_statements 1.11+), None before
    since: datetime | None = None
    #: parallel workers the plans asked for and those the server could start (1.12+)
    parallel_workers_planned: int | None = None
    parallel_workers_launched: int | None = None

    @property
    def key(self) -> tuple[int, int, bool]:
        """pg_stat_statements keeps one entry per query id, user and nesting level."""
        return (self.queryid, self.userid, self.toplevel)

    @property
    def cache_hit_ratio(self) -> float | None:
        total = self.shared_blks_hit + self.shared_blks_read
        return self.shared_blks_hit / total if total else None


@dataclass(frozen=True)
class StatementSnapshot:
    taken_at: float
    stats_reset: datetime | None
    statements: tuple[Statement, ...]
    #: seconds the snapshot covers, when it is the difference of two
    window_s: float | None = None
    #: pg_stat_statements_info.dealloc: how many times entries were evicted to make room
    dealloc: int | None = None
    #: entries were evicted during the window, so statements may be missing or undercounted
    window_incomplete: bool = False


def read_statements(
    runner: SqlRunner, clock: Callable[[], float] = time.monotonic
) -> StatementSnapshot:
    try:
        installed = installed_extension(runner)
        if installed is None:
            raise CheckFailed(ENABLE_HINT)
        schema, version = installed
        files_for = pgss_server_version(version)
        rows = runner.fetch_query(_in_schema("statements", files_for, schema))
        info = (
            runner.fetch_query(_in_schema("statements_info", files_for, schema))
            if files_for >= INFO_VERSION
            else []
        )
    except psycopg.errors.UndefinedTable:
        raise CheckFailed(ENABLE_HINT) from None
    except psycopg.errors.ObjectNotInPrerequisiteState:
        # the extension exists but the library was not preloaded
        raise CheckFailed(ENABLE_HINT) from None
    except psycopg.errors.InsufficientPrivilege as exc:
        raise CheckFailed(
            f"pg_stat_statements: permission denied ({exc.diag.message_primary}); "
            "grant pg_read_all_stats to the monitoring role"
        ) from None
    statements = tuple(Statement(**row) for row in rows)
    return StatementSnapshot(
        taken_at=clock(),
        stats_reset=info[0]["stats_reset"] if info else None,
        statements=statements,
        dealloc=info[0]["dealloc"] if info else None,
    )


_SCHEMA_QUERY = sql.SQL(
    "SELECT /* opscope */ n.nspname, e.extversion FROM pg_extension e "
    "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'"
)

#: the PostgreSQL major that brought each version of pg_stat_statements: the view's columns
#: follow the extension's version, which stays behind the server's until ALTER EXTENSION
#: ... UPDATE, so its files (statements.pgNN.sql) are chosen by it
PGSS_SERVER = {(1, 8): 13, (1, 9): 14, (1, 10): 15, (1, 11): 17, (1, 12): 18}
#: pg_stat_statements_info came with 1.9
INFO_VERSION = 140000


def pgss_server_version(extversion: str) -> int:
    """The server_version_num whose files fit pg_stat_statements `extversion`."""
    try:
        key = tuple(int(part) for part in extversion.split(".")[:2])
    except ValueError:
        key = (1, 8)
    known = [major for version, major in PGSS_SERVER.items() if version <= key]
    return (max(known) if known else 13) * 10000


def installed_extension(runner: SqlRunner) -> tuple[str, str] | None:
    """The schema pg_stat_statements was created in (not always public, nor on the
    search_path) and its version, or None when it is not installed in this database."""
    rows = runner.fetch_query(_SCHEMA_QUERY)
    return (str(rows[0]["nspname"]), str(rows[0]["extversion"])) if rows else None


def _in_schema(name: str, server_version_num: int, schema: str) -> sql.Composed:
    # the files are trusted text; the schema name goes in as a quoted identifier
    return sql.SQL(load_sql(name, server_version_num)).format(pgss=sql.Identifier(schema))


def diff_snapshots(before: StatementSnapshot, after: StatementSnapshot) -> StatementSnapshot:
    """What ran between two snapshots.

    Statements first seen in `after`, or all of them if the statistics were reset in between,
    count in full; so does an entry whose counters went down (reset on its own with
    pg_stat_statements_reset(userid, dbid, queryid), or evicted and added again). When entries
    were evicted in between (dealloc grew), the window may miss some: `window_incomplete`.

    Mean and standard deviation are recomputed for the window from the sums
    (pg_stat_statements keeps a running variance; we recover sum of squares from it). Max and
    min cannot be windowed, so they stay cumulative.
    """
    window = after.taken_at - before.taken_at
    if before.stats_reset != after.stats_reset:
        return replace(after, window_s=window)
    incomplete = before.dealloc != after.dealloc
    previous = {s.key: s for s in before.statements}
    out: list[Statement] = []
    for cur in after.statements:
        old = previous.get(cur.key)
        if old is None:
            out.append(cur)
            continue
        if (
            cur.calls < old.calls
            or cur.total_exec_time < old.total_exec_time
            or cur.since != old.since
        ):
            out.append(cur)  # this entry alone started over during the window
            continue
        calls = cur.calls - old.calls
        if calls <= 0:
            continue
        total = cur.total_exec_time - old.total_exec_time
        mean = total / calls
        sumsq_new = _sum_of_squares(cur)
        sumsq_old = _sum_of_squares(old)
        var = max((sumsq_new - sumsq_old) / calls - mean * mean, 0.0)
        out.append(
            replace(
                cur,
                calls=calls,
                total_exec_time=total,
                mean_exec_time=mean,
                stddev_exec_time=math.sqrt(var),
                rows=cur.rows - old.rows,
                shared_blks_hit=cur.shared_blks_hit - old.shared_blks_hit,
                shared_blks_read=cur.shared_blks_read - old.shared_blks_read,
                temp_blks_read=cur.temp_blks_read - old.temp_blks_read,
                temp_blks_written=cur.temp_blks_written - old.temp_blks_written,
                wal_bytes=cur.wal_bytes - old.wal_bytes,
                read_time_ms=cur.read_time_ms - old.read_time_ms,
                write_time_ms=cur.write_time_ms - old.write_time_ms,
                parallel_workers_planned=_minus(
                    cur.parallel_workers_planned, old.parallel_workers_planned
                ),
                parallel_workers_launched=_minus(
                    cur.parallel_workers_launched, old.parallel_workers_launched
                ),
            )
        )
    return StatementSnapshot(
        taken_at=after.taken_at,
        stats_reset=after.stats_reset,
        statements=tuple(out),
        window_s=window,
        dealloc=after.dealloc,
        window_incomplete=incomplete,
    )


def _minus(after: int | None, before: int | None) -> int | None:
    return None if after is None or before is None else after - before


def _sum_of_squares(s: Statement) -> float:
    # pg_stat_statements reports the population stddev: var = E[x^2] - mean^2
    return s.calls * (s.stddev_exec_time**2 + s.mean_exec_time**2)


def windowed(
    runner: SqlRunner,
    seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> StatementSnapshot:
    before = read_statements(runner, clock)
    sleep(seconds)
    return diff_snapshots(before, read_statements(runner, clock))


def share_of_total(statements: Sequence[Statement]) -> dict[tuple[int, int, bool], float | None]:
    """Each top-level statement's share of the top-level execution time.

    Nested statements (pg_stat_statements.track = all) run inside a top-level one whose time
    already includes theirs, so they get no share (None): counting them in either the total or
    the shares would add up to more than 100%."""
    total = sum(s.total_exec_time for s in statements if s.toplevel)
    return {
        s.key: (s.total_exec_time / total if total > 0 else 0.0) if s.toplevel else None
        for s in statements
    }

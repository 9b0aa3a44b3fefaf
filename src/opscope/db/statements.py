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
        schema = extension_schema(runner)
        if schema is None:
            raise CheckFailed(ENABLE_HINT)
        rows = runner.fetch_query(_in_schema("statements", runner, schema))
        info = runner.fetch_query(_in_schema("statements_info", runner, schema))
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
    "/* opscope */ SELECT n.nspname FROM pg_extension e "
    "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'"
)


def extension_schema(runner: SqlRunner) -> str | None:
    """The schema pg_stat_statements was created in (not always public, nor on the
    search_path), or None when it is not installed in this database."""
    rows = runner.fetch_query(_SCHEMA_QUERY)
    return str(rows[0]["nspname"]) if rows else None


def _in_schema(name: str, runner: SqlRunner, schema: str) -> sql.Composed:
    # the files are trusted text; the schema name goes in as a quoted identifier
    return sql.SQL(load_sql(name, runner.server_version_num)).format(pgss=sql.Identifier(schema))


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
        if cur.calls < old.calls or cur.total_exec_time < old.total_exec_time:
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

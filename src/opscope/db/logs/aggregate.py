"""Streaming aggregation of log events, in state that merges across parallel workers.

Everything here is bounded whatever the size of the log: per-statement percentiles come
from a mergeable sketch, the slowest executions from a fixed-size heap, and the number of
distinct statements is capped (the rest is counted in one "other" group). What is exact:
counts, totals, min, max, and percentiles of any group with at most `EXACT_LIMIT`
executions. What is approximate: percentiles of bigger groups, within 1% of the true value.
"""

from __future__ import annotations

import heapq
import itertools
import math
import re
from dataclasses import dataclass, field
from typing import Any, Final

from opscope.db.logs.maintenance import Maintenance
from opscope.db.logs.pgbouncer import PoolerStats
from opscope.redact import redact, redact_message, redact_parameters

EXACT_LIMIT: Final = 1024
#: relative accuracy of percentiles once a group outgrows EXACT_LIMIT
SKETCH_ACCURACY: Final = 0.01
_GAMMA: Final = (1 + SKETCH_ACCURACY) / (1 - SKETCH_ACCURACY)
_LOG_GAMMA: Final = math.log(_GAMMA)
_INV_LOG_GAMMA: Final = 1.0 / _LOG_GAMMA
MAX_STATEMENT_GROUPS: Final = 20_000
MAX_ERROR_TEMPLATES: Final = 2_000
OTHER_KEY: Final = "other"
CORRUPT_SAMPLES: Final = 5
#: temp-file and lock-wait groups tracked; the rest are counted in one "other" group
MAX_COUNTER_GROUPS = 2_000
#: a statement text, parameter list or message kept for the report is cut to this size
MAX_KEPT_TEXT: Final = 64 << 10
TRUNCATED: Final = "… (truncated)"


def cap_text(text: str) -> str:
    return text if len(text) <= MAX_KEPT_TEXT else text[:MAX_KEPT_TEXT] + TRUNCATED


def _kept(record: Execution) -> Execution:
    """`record`, its texts cut to MAX_KEPT_TEXT: what the top lists hold stays small."""
    if len(record.query) > MAX_KEPT_TEXT:
        record.query = cap_text(record.query)
    if record.parameters is not None and len(record.parameters) > MAX_KEPT_TEXT:
        record.parameters = cap_text(record.parameters)
    if record.plan is not None and len(record.plan) > 4 * MAX_KEPT_TEXT:
        record.plan = record.plan[: 4 * MAX_KEPT_TEXT] + TRUNCATED
    return record


class Quantiles:
    """Exact values while few, then a DDSketch-style log-bucket histogram.

    Buckets are powers of gamma, so any value is reported within SKETCH_ACCURACY of itself;
    two sketches merge by adding bucket counts, which makes per-worker results combine
    exactly as if one process had seen every value.
    """

    __slots__ = ("buckets", "count", "exact", "zeros")

    def __init__(self) -> None:
        self.exact: list[float] | None = []
        self.buckets: dict[int, int] = {}
        self.zeros = 0
        self.count = 0

    def add(self, value: float) -> None:
        self.count += 1
        exact = self.exact
        if exact is not None:
            exact.append(value)
            if len(exact) > EXACT_LIMIT:
                self._spill()
        elif value <= 0.0:
            self.zeros += 1
        else:
            index = math.ceil(math.log(value) * _INV_LOG_GAMMA)
            self.buckets[index] = self.buckets.get(index, 0) + 1

    def _spill(self) -> None:
        values, self.exact = self.exact or [], None
        buckets = self.buckets
        for value in values:
            if value <= 0.0:
                self.zeros += 1
            else:
                index = math.ceil(math.log(value) * _INV_LOG_GAMMA)
                buckets[index] = buckets.get(index, 0) + 1

    def merge(self, other: Quantiles) -> None:
        self.count += other.count
        if self.exact is not None and other.exact is not None:
            self.exact.extend(other.exact)
            if len(self.exact) > EXACT_LIMIT:
                self._spill()
            return
        if self.exact is not None:
            self._spill()
        if other.exact is not None:
            for value in other.exact:
                if value <= 0.0:
                    self.zeros += 1
                else:
                    index = math.ceil(math.log(value) * _INV_LOG_GAMMA)
                    self.buckets[index] = self.buckets.get(index, 0) + 1
        else:
            self.zeros += other.zeros
            for index, n in other.buckets.items():
                self.buckets[index] = self.buckets.get(index, 0) + n

    @property
    def is_exact(self) -> bool:
        return self.exact is not None

    def quantile(self, q: float) -> float:
        """Nearest-rank quantile: the smallest value with at least q of all values below."""
        if self.count == 0:
            return 0.0
        rank = max(1, math.ceil(q * self.count))
        if self.exact is not None:
            return sorted(self.exact)[rank - 1]
        seen = self.zeros
        if seen >= rank:
            return 0.0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                return 2.0 * _GAMMA**index / (_GAMMA + 1.0)
        return 0.0  # not reached: counts add up


@dataclass(slots=True)
class Execution:
    """One statement execution as the log recorded it, kept for the slowest list."""

    # Every field has a default so that pickle can make one when the module is compiled.
    ts: str = ""
    duration_ms: float = 0.0
    query: str = ""
    parameters: str | None = None
    database: str = ""
    user: str = ""
    application: str = ""
    pid: str = ""
    query_id: str = ""
    kind: str = "statement"
    plan: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "ts": self.ts,
            "duration_ms": round(self.duration_ms, 3),
            "query": redact(self.query),
            "parameters": redact_parameters(self.query, self.parameters) or None,
            "database": self.database or None,
            "user": self.user or None,
            "application": self.application or None,
            "pid": self.pid or None,
            "query_id": self.query_id or None,
            "kind": self.kind,
        }
        if self.plan is not None:
            data["plan"] = redact(self.plan)
        return data


class StatementStats:
    __slots__ = (
        "calls",
        "databases",
        "key",
        "max",
        "min",
        "quantiles",
        "query",
        "query_ids",
        "slowest",
        "total",
    )

    # Defaults so that pickle (a parallel worker's result) can make one when compiled.
    def __init__(self, key: str = "", query: str = "") -> None:
        self.key = key
        self.query = query
        self.calls = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -1.0
        self.quantiles = Quantiles()
        self.query_ids: set[str] = set()
        self.databases: set[str] = set()
        #: the slowest execution of this statement, with its literal text and parameters
        self.slowest: Execution | None = None

    def merge(self, other: StatementStats) -> None:
        self.calls += other.calls
        self.total += other.total
        self.min = min(self.min, other.min)
        if other.max > self.max:
            self.max = other.max
            self.slowest = other.slowest
        self.quantiles.merge(other.quantiles)
        _bounded_union(self.query_ids, other.query_ids)
        _bounded_union(self.databases, other.databases)

    def to_json(self) -> dict[str, Any]:
        q = self.quantiles
        return {
            "fingerprint": self.key,
            "query": redact(self.query),
            "query_ids": sorted(self.query_ids),
            "databases": sorted(self.databases),
            "calls": self.calls,
            "total_ms": round(self.total, 3),
            "mean_ms": round(self.total / self.calls, 3) if self.calls else 0.0,
            "min_ms": round(self.min, 3) if self.calls else 0.0,
            "p50_ms": round(q.quantile(0.50), 3),
            "p95_ms": round(q.quantile(0.95), 3),
            "p99_ms": round(q.quantile(0.99), 3),
            "max_ms": round(self.max, 3) if self.calls else 0.0,
            "percentiles_exact": q.is_exact,
            "example": self.slowest.to_json() if self.slowest is not None else None,
        }


def _bounded_union(into: set[str], other: set[str], limit: int = 8) -> None:
    for item in other:
        if len(into) >= limit:
            return
        into.add(item)


@dataclass(slots=True)
class Counter:
    """A count and a total, with the text that names the thing counted."""

    label: str = ""
    count: int = 0
    total: float = 0.0
    max: float = 0.0

    def add(self, amount: float) -> None:
        self.count += 1
        self.total += amount
        if amount > self.max:
            self.max = amount

    def merge(self, other: Counter) -> None:
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)


@dataclass(slots=True)
class ErrorGroup:
    """Errors whose messages differ only in names and numbers."""

    template: str = ""
    level: str = ""
    sqlstate: str = ""
    message: str = ""
    count: int = 0
    statement: str = ""


@dataclass
class Aggregate:
    """All that a run learns from the log; `merge` combines the parts of a parallel run."""

    top: int = 20
    queries: int = 0
    total_ms: float = 0.0
    entries: int = 0
    statements: dict[str, StatementStats] = field(default_factory=dict)
    #: min-heap of (duration, tie-break, record): the slowest `top` executions
    slowest: list[tuple[float, tuple[str, str, str, str, int], Execution]] = field(
        default_factory=list
    )
    #: minute "YYYY-MM-DD HH:MM" -> [queries, total_ms, max_ms, errors]
    per_minute: dict[str, list[float]] = field(default_factory=dict)
    first_ts: str = ""
    last_ts: str = ""
    prepare: Counter = field(default_factory=lambda: Counter("parse"))
    bind: Counter = field(default_factory=lambda: Counter("bind"))
    plans: int = 0
    plans_attached: int = 0
    logged_statements: int = 0
    errors: dict[str, ErrorGroup] = field(default_factory=dict)
    error_levels: dict[str, int] = field(default_factory=dict)
    sqlstates: dict[str, int] = field(default_factory=dict)
    temp_files: dict[str, Counter] = field(default_factory=dict)
    lock_waits: dict[str, Counter] = field(default_factory=dict)
    locks_acquired: int = 0
    corrupt: int = 0
    corrupt_samples: list[str] = field(default_factory=list)
    #: units longer than max_entry_bytes that the parsers cut, and the bytes left out
    cut_entries: int = 0
    cut_bytes: int = 0
    filtered_out: int = 0
    #: things the user should know about how the log was read, each said once
    warnings: list[str] = field(default_factory=list)
    #: what a PgBouncer log showed (pgbouncer.py)
    pooler: PoolerStats = field(default_factory=PoolerStats)
    #: autovacuum and checkpoint entries (maintenance.py)
    maintenance: Maintenance = field(default_factory=Maintenance)
    # The minute the last execution fell in: consecutive entries share it.
    _minute_key: str = ""
    _minute: list[float] = field(default_factory=list)

    # -- events -------------------------------------------------------------------------

    def add(
        self,
        key: str,
        display: str,
        ts: str,
        duration: float,
        query: str,
        parameters: str | None,
        database: str,
        user: str,
        application: str,
        pid: str,
        query_id: str,
        kind: str,
        record: Execution | None = None,
    ) -> None:
        """Count one execution; `key`/`display` come from normalize().

        This runs once per statement in the log, so it is written for speed: the
        Execution record is only built when the execution makes one of the top lists.
        """
        self.queries += 1
        self.total_ms += duration
        stats = self.statements.get(key)
        if stats is None:
            if len(self.statements) >= MAX_STATEMENT_GROUPS:
                key, display = OTHER_KEY, "(statements beyond the tracked limit)"
                stats = self.statements.get(key)
            if stats is None:
                stats = self.statements[key] = StatementStats(key, cap_text(display))
        stats.calls += 1
        stats.total += duration
        if duration < stats.min:
            stats.min = duration
        if duration > stats.max:
            stats.max = duration
            if record is None:
                record = Execution(
                    ts,
                    duration,
                    query,
                    parameters,
                    database,
                    user,
                    application,
                    pid,
                    query_id,
                    kind,
                )
            stats.slowest = record = _kept(record)
        quantiles = stats.quantiles
        exact = quantiles.exact
        if exact is not None and len(exact) < EXACT_LIMIT:
            quantiles.count += 1
            exact.append(duration)
        elif exact is None and duration > 0.0:
            quantiles.count += 1
            index = math.ceil(math.log(duration) * _INV_LOG_GAMMA)
            buckets = quantiles.buckets
            buckets[index] = buckets.get(index, 0) + 1
        else:
            quantiles.add(duration)
        if query_id and len(stats.query_ids) < 8:
            stats.query_ids.add(query_id)
        if database and len(stats.databases) < 8:
            stats.databases.add(database)
        heap = self.slowest
        if len(heap) < self.top or duration >= heap[0][0]:
            if record is None:
                record = Execution(
                    ts,
                    duration,
                    query,
                    parameters,
                    database,
                    user,
                    application,
                    pid,
                    query_id,
                    kind,
                )
            self._keep_slowest(record)
        if ts:
            # the same minute as the entry before, told without cutting a key out of `ts`
            last_key = self._minute_key
            if (len(last_key) == 16 and ts.startswith(last_key)) or ts[:16] == last_key:
                minute = self._minute
            else:
                minute_key = ts[:16]
                found = self.per_minute.get(minute_key)
                if found is None:
                    found = self.per_minute[minute_key] = [0, 0.0, 0.0, 0]
                self._minute_key, self._minute = minute_key, found
                minute = found
            minute[0] += 1
            minute[1] += duration
            if duration > minute[2]:
                minute[2] = duration

    def execution(self, key: str, display: str, record: Execution) -> None:
        r = record
        self.add(
            key,
            display,
            r.ts,
            r.duration_ms,
            r.query,
            r.parameters,
            r.database,
            r.user,
            r.application,
            r.pid,
            r.query_id,
            r.kind,
            r,
        )

    def _keep_slowest(self, record: Execution) -> None:
        record = _kept(record)
        heap = self.slowest
        if len(heap) < self.top:
            heapq.heappush(heap, (record.duration_ms, _tie(record), record))
        else:
            item = (record.duration_ms, _tie(record), record)
            if item[:2] > heap[0][:2]:
                heapq.heapreplace(heap, item)

    def saw(self, ts: str) -> None:
        """Note a timestamp for first/last; parsers call it for a chunk's first and last
        entries (logs are written in time order), not for every entry."""
        if not self.first_ts or ts < self.first_ts:
            self.first_ts = ts
        if ts > self.last_ts:
            self.last_ts = ts

    def error(self, ts: str, level: str, sqlstate: str, message: str, statement: str) -> None:
        self.error_levels[level] = self.error_levels.get(level, 0) + 1
        # A failed CREATE/ALTER ROLE quotes its password in the message ("at or near …").
        message = redact_message(message, statement)
        if not sqlstate:
            sqlstate = infer_sqlstate(message)
        if sqlstate:
            self.sqlstates[sqlstate] = self.sqlstates.get(sqlstate, 0) + 1
        template = message_template(message)
        group = self.errors.get(template)
        if group is None:
            if len(self.errors) >= MAX_ERROR_TEMPLATES:
                template = "(other messages)"
                group = self.errors.get(template)
            if group is None:
                group = self.errors[template] = ErrorGroup(
                    template, level, sqlstate, cap_text(message)
                )
        group.count += 1
        if statement and not group.statement:
            group.statement = redact(statement)[:4000]
        if ts:
            minute = self.per_minute.get(ts[:16])
            if minute is None:
                minute = self.per_minute[ts[:16]] = [0, 0.0, 0.0, 0]
            minute[3] += 1
            self.saw(ts)

    def temp_file(self, key: str, display: str, size: int) -> None:
        _counter(self.temp_files, key, display).add(float(size))

    def lock_wait(self, key: str, display: str, wait_ms: float, acquired: bool) -> None:
        counter = _counter(self.lock_waits, key, display)
        if acquired:
            self.locks_acquired += 1
            counter.total += wait_ms
        else:
            counter.count += 1
        counter.max = max(counter.max, wait_ms)

    def warn(self, message: str) -> None:
        if message not in self.warnings and len(self.warnings) < 20:
            self.warnings.append(message)

    def bad_input(self, text: str, count: int = 1) -> None:
        self.corrupt += count
        if len(self.corrupt_samples) < CORRUPT_SAMPLES:
            self.corrupt_samples.append(redact(text[:2000])[:300])

    # -- combining ----------------------------------------------------------------------

    def merge(self, other: Aggregate) -> None:
        self.queries += other.queries
        self.total_ms += other.total_ms
        self.entries += other.entries
        for key, stats in other.statements.items():
            mine = self.statements.get(key)
            if mine is None:
                if len(self.statements) >= MAX_STATEMENT_GROUPS and key != OTHER_KEY:
                    mine = self.statements.get(OTHER_KEY)
                    if mine is None:
                        mine = self.statements[OTHER_KEY] = StatementStats(
                            OTHER_KEY, "(statements beyond the tracked limit)"
                        )
                    mine.merge(stats)
                else:
                    self.statements[key] = stats
            else:
                mine.merge(stats)
        for _, _, record in other.slowest:
            self._keep_slowest(record)
        for minute, values in other.per_minute.items():
            mine_m = self.per_minute.get(minute)
            if mine_m is None:
                self.per_minute[minute] = list(values)
            else:
                mine_m[0] += values[0]
                mine_m[1] += values[1]
                mine_m[2] = max(mine_m[2], values[2])
                mine_m[3] += values[3]
        for ts in (other.first_ts, other.last_ts):
            if ts:
                self.saw(ts)
        self.prepare.merge(other.prepare)
        self.bind.merge(other.bind)
        self.plans += other.plans
        self.plans_attached += other.plans_attached
        self.logged_statements += other.logged_statements
        for template, group in other.errors.items():
            mine_e = self.errors.get(template)
            if mine_e is None:
                self.errors[template] = group
            else:
                mine_e.count += group.count
                mine_e.statement = mine_e.statement or group.statement
        _merge_counts(self.error_levels, other.error_levels)
        _merge_counts(self.sqlstates, other.sqlstates)
        _merge_counters(self.temp_files, other.temp_files)
        _merge_counters(self.lock_waits, other.lock_waits)
        self.locks_acquired += other.locks_acquired
        self.corrupt += other.corrupt
        self.cut_entries += other.cut_entries
        self.cut_bytes += other.cut_bytes
        room = CORRUPT_SAMPLES - len(self.corrupt_samples)
        self.corrupt_samples.extend(other.corrupt_samples[: max(room, 0)])
        self.filtered_out += other.filtered_out
        for message in other.warnings:
            self.warn(message)
        self.pooler.merge(other.pooler)
        self.maintenance.merge(other.maintenance)

    def slowest_executions(self) -> list[Execution]:
        ranked = sorted(self.slowest, key=lambda t: (t[0], t[1]), reverse=True)
        return [rec for _, _, rec in ranked]


_ties = itertools.count()


def _tie(record: Execution) -> tuple[str, str, str, str, int]:
    """Orders executions of equal duration the same way however the log was split; the
    counter only separates entries that look identical, so the records never compare."""
    return (record.ts, record.pid, record.query, record.parameters or "", next(_ties))


OTHER_COUNTER_LABEL = "(statements beyond the tracked limit)"


def _counter(counters: dict[str, Counter], key: str, display: str) -> Counter:
    """The counter of `key`, or the "other" one once MAX_COUNTER_GROUPS are tracked."""
    counter = counters.get(key)
    if counter is None:
        if len(counters) >= MAX_COUNTER_GROUPS:
            key, display = OTHER_KEY, OTHER_COUNTER_LABEL
            counter = counters.get(key)
        if counter is None:
            counter = counters[key] = Counter(cap_text(display))
    return counter


def _merge_counters(into: dict[str, Counter], other: dict[str, Counter]) -> None:
    for key, counter in other.items():
        mine = into.get(key)
        if mine is None and (len(into) < MAX_COUNTER_GROUPS or key == OTHER_KEY):
            into[key] = counter
        elif mine is None:
            _counter(into, OTHER_KEY, OTHER_COUNTER_LABEL).merge(counter)
        else:
            mine.merge(counter)


def _merge_counts(into: dict[str, int], other: dict[str, int]) -> None:
    for key, n in other.items():
        into[key] = into.get(key, 0) + n


_TEMPLATE = re.compile(r'"[^"]*"|\'[^\']*\'|\b\d+(?:\.\d+)?\b')


def message_template(message: str) -> str:
    """An error message with its names and numbers blanked, to count alike errors together."""
    first_line = message.split("\n", 1)[0]
    return _TEMPLATE.sub(lambda m: '"…"' if m.group(0)[0] in "\"'" else "N", first_line)[:300]


# stderr logs carry no SQLSTATE unless the prefix has %e or log_error_verbosity is verbose;
# these messages are common enough that their code is worth knowing anyway.
_KNOWN_MESSAGES = (
    ("canceling statement due to statement timeout", "57014"),
    ("canceling statement due to lock timeout", "55P03"),
    ("canceling statement due to user request", "57014"),
    ("canceling statement due to conflict with recovery", "40001"),
    ("deadlock detected", "40P01"),
    ("could not serialize access", "40001"),
    ("duplicate key value violates unique constraint", "23505"),
    ("violates foreign key constraint", "23503"),
    ("violates check constraint", "23514"),
    ("violates not-null constraint", "23502"),
    ("null value in column", "23502"),
    ("division by zero", "22012"),
    ("invalid input syntax", "22P02"),
    ("value too long for type", "22001"),
    ("out of range", "22003"),
    ("syntax error at or near", "42601"),
    ("syntax error at end of input", "42601"),
    ("permission denied", "42501"),
    ("does not exist", "42P01"),
    ("already exists", "42P07"),
    ("terminating connection due to administrator command", "57P01"),
    ("terminating connection due to idle-in-transaction timeout", "25P03"),
    ("current transaction is aborted", "25P02"),
    ("password authentication failed", "28P01"),
    ("no pg_hba.conf entry", "28000"),
    ("too many connections", "53300"),
    ("sorry, too many clients already", "53300"),
    ("out of memory", "53200"),
    ("could not extend file", "53100"),
)


def infer_sqlstate(message: str) -> str:
    for needle, code in _KNOWN_MESSAGES:
        if needle in message:
            if code == "42P01" and "column" in message:
                return "42703"
            if code == "42P01" and "function" in message:
                return "42883"
            return code
    return ""


SQLSTATE_CLASSES = {
    "00": "successful completion",
    "01": "warning",
    "08": "connection exception",
    "0A": "feature not supported",
    "21": "cardinality violation",
    "22": "data exception",
    "23": "integrity constraint violation",
    "25": "invalid transaction state",
    "28": "invalid authorization specification",
    "2B": "dependent privilege descriptors still exist",
    "3D": "invalid catalog name",
    "3F": "invalid schema name",
    "40": "transaction rollback",
    "42": "syntax error or access rule violation",
    "44": "with check option violation",
    "53": "insufficient resources",
    "54": "program limit exceeded",
    "55": "object not in prerequisite state",
    "57": "operator intervention",
    "58": "system error",
    "F0": "configuration file error",
    "HV": "foreign data wrapper error",
    "P0": "PL/pgSQL error",
    "XX": "internal error",
}

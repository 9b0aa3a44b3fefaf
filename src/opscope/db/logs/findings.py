"""Checks over a log aggregate; their ids are listed in docs/checks.md, with details in
docs/logs.md."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from opscope.db.logs.aggregate import Aggregate, StatementStats
from opscope.db.logs.options import LogOptions
from opscope.display import visible
from opscope.findings import Finding, Severity
from opscope.redact import redact
from opscope.units import human_bytes, human_ms

#: the target kind of a set of server logs
KIND = "postgresql-log"

MAX_FINDINGS_PER_CHECK = 50
# SQLSTATEs that point at contention or overload rather than at one bad statement.
_SERIOUS_SQLSTATES = {"40P01", "40001", "57014", "55P03", "53300", "53200", "53100"}


def statement_object(stats: StatementStats) -> str:
    """What a statement finding is about: its queryid when the log carried exactly one,
    otherwise the fingerprint opscope grouped it by."""
    if len(stats.query_ids) == 1:
        return f"queryid:{next(iter(stats.query_ids))}"
    return f"fingerprint:{stats.key}"


@dataclass(frozen=True)
class LogContext:
    """What the log checks read: the aggregate of one analyzed set of files."""

    aggregate: Aggregate
    target: str
    options: LogOptions


def _bad_entries(aggregate: Aggregate, target: str) -> Iterator[Finding]:
    if aggregate.corrupt:
        yield _make(
            check="log_bad_entries",
            category="logs",
            severity=Severity.info,
            target=target,
            object="log",
            title=f"{aggregate.corrupt} log line(s) could not be parsed",
            detail="Lines that match no known entry shape: a wrong --prefix, another "
            "program writing to the same file, or a truncated or damaged file.",
            evidence={"count": aggregate.corrupt, "samples": aggregate.corrupt_samples},
            recommendation="Pass --prefix with the server's log_line_prefix if it is custom.",
        )


class _LogCheck:
    """A log check: registered like every other check, so `opscope checks` lists it and
    one that fails becomes an error entry instead of ending the run."""

    kind: ClassVar[str] = KIND
    id: ClassVar[str]
    category: ClassVar[str]
    summary: ClassVar[str]

    def run(self, context: LogContext) -> Iterable[Finding]:
        raise NotImplementedError


class SlowQueryFromLog(_LogCheck):
    id = "slow_query"
    category = "queries"
    summary = (
        "A statement with an execution in the server log at least --slow ms (default 1000); "
        "critical when its median is that slow. Evidence has source: log and p50/p95/p99/max."
    )

    def run(self, context: LogContext) -> Iterable[Finding]:
        return _slow_queries(context.aggregate, context.target, context.options)


class LogErrors(_LogCheck):
    id = "log_errors"
    category = "errors"
    summary = "Errors in the log grouped by SQLSTATE; warning for contention and overload codes."

    def run(self, context: LogContext) -> Iterable[Finding]:
        return _errors(context.aggregate, context.target)


class TempFiles(_LogCheck):
    id = "temp_files"
    category = "queries"
    summary = "Statements that wrote temporary files (log_temp_files), with their sizes."

    def run(self, context: LogContext) -> Iterable[Finding]:
        return _temp_files(context.aggregate, context.target)


class LockWaits(_LogCheck):
    id = "lock_waits"
    category = "locks"
    summary = "Statements that waited for locks past deadlock_timeout (log_lock_waits)."

    def run(self, context: LogContext) -> Iterable[Finding]:
        return _lock_waits(context.aggregate, context.target)


class LogBadEntries(_LogCheck):
    id = "log_bad_entries"
    category = "logs"
    summary = "Log lines that match no known entry shape (wrong --prefix, damaged file)."

    def run(self, context: LogContext) -> Iterable[Finding]:
        return _bad_entries(context.aggregate, context.target)


CHECKS = [SlowQueryFromLog(), LogErrors(), TempFiles(), LockWaits(), LogBadEntries()]


def _slow_queries(aggregate: Aggregate, target: str, options: LogOptions) -> Iterator[Finding]:
    slow = [s for s in aggregate.statements.values() if s.calls and s.max >= options.slow_ms]
    slow.sort(key=lambda s: (-s.total, s.key))
    for stats in slow[:MAX_FINDINGS_PER_CHECK]:
        q = stats.quantiles
        p50 = q.quantile(0.5)
        typical = p50 >= options.slow_ms
        severity = Severity.critical if typical else Severity.warning
        example = stats.slowest
        evidence = {
            "source": "log",
            "calls": stats.calls,
            "total_ms": round(stats.total, 3),
            "mean_ms": round(stats.total / stats.calls, 3),
            "p50_ms": round(p50, 3),
            "p95_ms": round(q.quantile(0.95), 3),
            "p99_ms": round(q.quantile(0.99), 3),
            "max_ms": round(stats.max, 3),
            "query_ids": sorted(stats.query_ids),
            "databases": sorted(stats.databases),
            "slowest": example.to_json() if example is not None else None,
        }
        how = "typically" if typical else "at worst"
        yield _make(
            check="slow_query",
            category="queries",
            severity=severity,
            target=target,
            object=statement_object(stats),
            title=f"statement takes {how} {human_ms(p50 if typical else stats.max)} "
            f"({stats.calls} executions in the log)",
            detail=f"{stats.query[:500]}\n\nThe server log shows {stats.calls} executions "
            f"totalling {human_ms(stats.total)}; p95 {human_ms(q.quantile(0.95))}, "
            f"max {human_ms(stats.max)}.",
            evidence=evidence,
            recommendation="Run EXPLAIN (ANALYZE, BUFFERS) with the parameters of the slowest "
            "execution, and look for a missing index or a poor row estimate.",
        )


# What to do about the errors seen most in production logs, by SQLSTATE (then by class).
_ERROR_ADVICE = {
    "40P01": "Deadlocks: make transactions touch rows and tables in one consistent order, "
    "and keep them short.",
    "40001": "Serialization failures are expected under SERIALIZABLE or REPEATABLE READ: retry "
    "the transaction in the application.",
    "57014": "Statements cancelled (statement_timeout or a user): find why they are slow with "
    "the slow_query findings, or raise the timeout for that role.",
    "55P03": "lock_timeout expired: find the long transactions holding the lock "
    "(pg_stat_activity, pg_locks) and shorten them.",
    "53300": "Too many connections: put a pooler (PgBouncer) in front, or lower the "
    "application's pool sizes.",
    "23505": "Unique violations: use INSERT ... ON CONFLICT where duplicates are expected.",
    "42P01": "A table that does not exist: a deployment out of step with migrations, or a "
    "wrong search_path.",
    "42703": "A column that does not exist: the application and the schema disagree.",
}
_CLASS_ADVICE = {
    "08": "Connection failures: check the network, the pooler and client timeouts.",
    "28": "Authentication failures: a wrong password or pg_hba.conf entry, or someone probing.",
    "53": "The server is out of a resource (memory, disk, connections): check its limits.",
    "58": "A system error (disk, I/O): check the server's storage now.",
    "XX": "An internal error: check for corruption and for a minor release that fixes it.",
}


def error_advice(sqlstate: str | None) -> str:
    if sqlstate and sqlstate in _ERROR_ADVICE:
        return _ERROR_ADVICE[sqlstate]
    if sqlstate and sqlstate[:2] in _CLASS_ADVICE:
        return _CLASS_ADVICE[sqlstate[:2]]
    return "Fix the statement, or the application code that sends it (the example shows which)."


def _errors(aggregate: Aggregate, target: str) -> Iterator[Finding]:
    groups = sorted(aggregate.errors.values(), key=lambda g: (-g.count, g.template))
    for group in groups[:MAX_FINDINGS_PER_CHECK]:
        serious = group.level in ("FATAL", "PANIC") or group.sqlstate in _SERIOUS_SQLSTATES
        yield _make(
            check="log_errors",
            category="errors",
            severity=Severity.critical
            if group.level == "PANIC"
            else (Severity.warning if serious else Severity.info),
            target=target,
            object=f"sqlstate:{group.sqlstate}" if group.sqlstate else "sqlstate:unknown",
            key=(group.template,),
            title=f"{group.count} × {group.level}: {group.template[:120]}",
            evidence={
                "count": group.count,
                "level": group.level,
                "sqlstate": group.sqlstate or None,
                "example": group.message[:2000],
                "statement": redact(group.statement) or None,
            },
            recommendation=error_advice(group.sqlstate),
        )


def _temp_files(aggregate: Aggregate, target: str) -> Iterator[Finding]:
    counters = sorted(aggregate.temp_files.items(), key=lambda kv: (-kv[1].total, kv[0]))
    for key, counter in counters[:MAX_FINDINGS_PER_CHECK]:
        yield _make(
            check="temp_files",
            category="queries",
            severity=Severity.warning,
            target=target,
            object=f"fingerprint:{key}",
            title=f"{counter.count} temporary file(s), {human_bytes(counter.total)} written",
            detail=counter.label[:500],
            evidence={
                "count": counter.count,
                "total_bytes": int(counter.total),
                "max_bytes": int(counter.max),
                "query": counter.label,
            },
            recommendation="Sorts and hashes spill to disk: raise work_mem for this workload "
            "(SET LOCAL work_mem in its transaction) or make it read fewer rows.",
        )


def _lock_waits(aggregate: Aggregate, target: str) -> Iterator[Finding]:
    counters = sorted(aggregate.lock_waits.items(), key=lambda kv: (-kv[1].count, kv[0]))
    for key, counter in counters[:MAX_FINDINGS_PER_CHECK]:
        if not counter.count:
            continue
        yield _make(
            check="lock_waits",
            category="locks",
            severity=Severity.warning,
            target=target,
            object=f"fingerprint:{key}",
            title=f"waited on a lock {counter.count} time(s), up to {human_ms(counter.max)}",
            detail=counter.label[:500],
            evidence={
                "count": counter.count,
                "total_wait_ms": round(counter.total, 3),
                "max_wait_ms": round(counter.max, 3),
                "query": counter.label,
            },
            recommendation="Keep the transactions that hold these locks short, and take row "
            "locks in a consistent order.",
        )


def _shown(value: Any) -> Any:
    """Log text in a finding, with control characters made visible (findings are printed
    by the generic renderers, which pass text through as it is)."""
    if isinstance(value, str):
        return visible(value)
    if isinstance(value, dict):
        return {k: _shown(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shown(v) for v in value]
    return value


def _make(**fields: Any) -> Finding:
    for name in ("title", "detail", "evidence"):
        if name in fields:
            fields[name] = _shown(fields[name])
    return Finding.make(**fields)

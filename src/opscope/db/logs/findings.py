"""Findings drawn from a log aggregate; their check ids are documented in docs/logs.md."""

from __future__ import annotations

from collections.abc import Iterator

from opscope.db.logs.aggregate import Aggregate, StatementStats
from opscope.db.logs.normalize import redact
from opscope.db.logs.options import LogOptions
from opscope.findings import Finding, Severity

MAX_FINDINGS_PER_CHECK = 50
# SQLSTATEs that point at contention or overload rather than at one bad statement.
_SERIOUS_SQLSTATES = {"40P01", "40001", "57014", "55P03", "53300", "53200", "53100"}


def statement_object(stats: StatementStats) -> str:
    """What a statement finding is about: its queryid when the log carried exactly one,
    otherwise the fingerprint opscope grouped it by."""
    if len(stats.query_ids) == 1:
        return f"queryid:{next(iter(stats.query_ids))}"
    return f"fingerprint:{stats.key}"


def log_findings(aggregate: Aggregate, target: str, options: LogOptions) -> Iterator[Finding]:
    yield from _slow_queries(aggregate, target, options)
    yield from _errors(aggregate, target)
    yield from _temp_files(aggregate, target)
    yield from _lock_waits(aggregate, target)
    if aggregate.corrupt:
        yield Finding.make(
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
        yield Finding.make(
            check="slow_query",
            category="queries",
            severity=severity,
            target=target,
            object=statement_object(stats),
            title=f"statement takes {how} {_ms(p50 if typical else stats.max)} "
            f"({stats.calls} executions in the log)",
            detail=f"{stats.query[:500]}\n\nThe server log shows {stats.calls} executions "
            f"totalling {_ms(stats.total)}; p95 {_ms(q.quantile(0.95))}, max {_ms(stats.max)}.",
            evidence=evidence,
            recommendation="Run EXPLAIN (ANALYZE, BUFFERS) with the parameters of the slowest "
            "execution, and look for a missing index or a poor row estimate.",
        )


def _errors(aggregate: Aggregate, target: str) -> Iterator[Finding]:
    groups = sorted(aggregate.errors.values(), key=lambda g: (-g.count, g.template))
    for group in groups[:MAX_FINDINGS_PER_CHECK]:
        serious = group.level in ("FATAL", "PANIC") or group.sqlstate in _SERIOUS_SQLSTATES
        yield Finding.make(
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
        )


def _temp_files(aggregate: Aggregate, target: str) -> Iterator[Finding]:
    counters = sorted(aggregate.temp_files.items(), key=lambda kv: (-kv[1].total, kv[0]))
    for key, counter in counters[:MAX_FINDINGS_PER_CHECK]:
        yield Finding.make(
            check="temp_files",
            category="queries",
            severity=Severity.warning,
            target=target,
            object=f"fingerprint:{key}",
            title=f"{counter.count} temporary file(s), {_bytes(counter.total)} written",
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
        yield Finding.make(
            check="lock_waits",
            category="locks",
            severity=Severity.warning,
            target=target,
            object=f"fingerprint:{key}",
            title=f"waited on a lock {counter.count} time(s), up to {_ms(counter.max)}",
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


def _ms(value: float) -> str:
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.1f} ms"


def _bytes(value: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024:
            return f"{value:.0f} {unit}"
        value /= 1024
    return f"{value:.0f} TB"

"""`analyze_logs`: read log files, parse them (in parallel when big), and build a Report."""

from __future__ import annotations

import collections
import multiprocessing
import os
import signal
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from opscope.checks import Registry, run_checks
from opscope.config import Config
from opscope.db.logs.aggregate import EXACT_LIMIT, SQLSTATE_CLASSES, Aggregate
from opscope.db.logs.findings import KIND, LogContext
from opscope.db.logs.managed import (
    HEROKU_PREFIX,
    JSONLOG_FORMS,
    STDERR_FORMS,
    detect_managed,
    payload_sample,
    unwrap,
)
from opscope.db.logs.options import LogOptions, log_options
from opscope.db.logs.parse_csv import parse_csv
from opscope.db.logs.parse_json import parse_json
from opscope.db.logs.parse_stderr import parse_stderr
from opscope.db.logs.parse_syslog import inner_prefix, stderr_prefix, syslog_to_stderr
from opscope.db.logs.pgbouncer import LINE as PGBOUNCER_LINE
from opscope.db.logs.pgbouncer import is_pgbouncer
from opscope.db.logs.prefix import GENERIC, compile_prefix, detect_prefix, resolve_prefix
from opscope.db.logs.reader import (
    SAMPLE_BYTES,
    InputStats,
    LogInputError,
    Splitter,
    chunks,
    csv_splitter,
    detect_format,
    file_size,
    json_splitter,
    open_input,
    read_blocks,
    stderr_splitter,
)
from opscope.db.logs.sessions import ChunkResult, ChunkState, Merger
from opscope.findings import CheckError, Clock, Report, Target, utc_now
from opscope.fixes import group_fixes
from opscope.nogc import paused_gc
from opscope.plugins import default_plugins
from opscope.redact import redact

#: formats read by the stderr parser, with a log_line_prefix
PREFIXED = ("stderr", "syslog", *STDERR_FORMS)

#: inputs at least this big use every core unless --jobs says otherwise
PARALLEL_THRESHOLD = 32 << 20


class LogWorkerError(LogInputError):
    """A worker process died (the kernel's out-of-memory killer, a crash) while it parsed
    a file; the message is one line. A LogInputError, so that every command that reads
    logs says it in one line."""


@dataclass(frozen=True)
class Plan:
    """How one input is read: its format and, for stderr and syslog, its prefix."""

    path: str
    log_format: str
    prefix: str


def parse_chunk(log_format: str, prefix: str, data: bytes, options: LogOptions) -> ChunkResult:
    """Parse one chunk into a fresh state; runs in a worker process in parallel mode.

    The cyclic garbage collector is off meanwhile: a chunk makes a million short-lived
    tuples and strings and no reference cycle, and the collector would walk the live
    aggregate again and again for nothing (6% of the parse). It is on between chunks."""
    with paused_gc():
        return _parse_chunk(log_format, prefix, data, options)


def _parse_chunk(log_format: str, prefix: str, data: bytes, options: LogOptions) -> ChunkResult:
    state = ChunkState(options)
    text = data.decode("utf-8", "replace")
    if log_format == "pgbouncer":
        for line in text.split("\n"):
            m = PGBOUNCER_LINE.match(line)
            if m is not None:
                state.aggregate.pooler.line(m.group("ts"), m.group("level"), m.group("msg"))
            elif line.strip():
                state.aggregate.bad_input(line)
        return state.finish()
    if log_format == "csvlog":
        parse_csv(text, state)
    elif log_format in ("jsonlog", *JSONLOG_FORMS):
        parse_json(text, state)
    else:
        parse_stderr(text, resolve_prefix(prefix), state)
    return state.finish()


def _worker_count(paths: Sequence[str], options: LogOptions) -> int:
    if options.jobs is not None:
        return max(1, options.jobs)
    size = sum(file_size(p) for p in paths)
    if size < PARALLEL_THRESHOLD:
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _prepare(path: str, options: LogOptions) -> tuple[Plan, Iterator[bytes], InputStats]:
    """Open `path`, detect what it holds, and give back its chunk stream."""
    stream, stats = open_input(path)
    blocks = read_blocks(stream, stats, min(options.chunk_bytes, 4 << 20))
    sample = b""
    for block in blocks:
        sample += block
        if len(sample) >= SAMPLE_BYTES:
            break
    log_format = options.log_format or (
        "pgbouncer" if is_pgbouncer(sample) else detect_managed(sample) or detect_format(sample)
    )

    def replay() -> Iterator[bytes]:
        try:
            yield sample
            yield from blocks
        finally:
            if path != "-":
                stream.close()

    source: Iterator[bytes] = replay()
    split: Splitter
    if log_format == "syslog":
        inner = options.prefix if options.prefix is not None else inner_prefix(sample)
        prefix = stderr_prefix(inner)
        # the year of BSD syslog lines is inferred from when the file was last written
        written = datetime.fromtimestamp(os.path.getmtime(path)) if path != "-" else None
        source = syslog_to_stderr(source, inner, stats, written, options.max_entry_bytes)
        split = stderr_splitter(resolve_prefix(prefix))
        plan = Plan(path, log_format, prefix)
    elif log_format in STDERR_FORMS:
        if log_format == "heroku":
            prefix, add_time = HEROKU_PREFIX, False
        else:
            inner = (
                options.prefix
                if options.prefix is not None
                else detect_prefix(payload_sample(sample)) or GENERIC
            )
            add_time = inner == GENERIC or not compile_prefix(inner).ts_kind
            prefix = inner if inner == GENERIC or not add_time else "%m " + inner
        source = unwrap(log_format, source, stats, options.max_entry_bytes, add_time)
        split = stderr_splitter(resolve_prefix(prefix))
        plan = Plan(path, log_format, prefix)
    elif log_format == "pgbouncer":
        split = json_splitter  # one line an event
        plan = Plan(path, log_format, "")
    elif log_format in JSONLOG_FORMS:
        source = unwrap(log_format, source, stats, options.max_entry_bytes, False)
        split = json_splitter
        plan = Plan(path, log_format, "")
    elif log_format in ("csvlog", "jsonlog"):
        split = csv_splitter if log_format == "csvlog" else json_splitter
        plan = Plan(path, log_format, "")
    else:
        if options.prefix is not None:
            prefix = options.prefix
        else:
            prefix = detect_prefix(sample.decode("utf-8", "replace")) or GENERIC
        split = stderr_splitter(resolve_prefix(prefix))
        plan = Plan(path, "stderr", prefix)
    pieces = chunks(source, split, options.chunk_bytes, options.max_entry_bytes, stats.cuts)
    return plan, pieces, stats


def analyze_logs(
    config: Config,
    paths: Sequence[str],
    options: LogOptions | None = None,
    *,
    registry: Registry | None = None,
    clock: Clock = utc_now,
) -> Report:
    """Read every file in `paths` ("-" for stdin) in order and report what they show, with
    `options` (default: from the config's `postgresql` section).

    Raises LogInputError (one-line message) when a file cannot be opened, and its
    LogWorkerError when a worker process died; damage inside a file is counted and
    reported instead, and so are entries over `options.max_entry_bytes`.
    """
    options = options or log_options(config)
    report = build_report(*aggregate_logs(paths, options), registry=registry)
    report.generated_at = clock()
    report.fixes = group_fixes(report.findings)
    return report


def aggregate_logs(
    paths: Sequence[str], options: LogOptions
) -> tuple[Aggregate, list[Plan], list[InputStats], LogOptions, int, float]:
    """The merged aggregate of `paths`, with what build_report needs besides it; other
    commands (explain's parameter values) read the aggregate directly."""
    if options.prefix is not None and options.prefix != GENERIC:
        compile_prefix(options.prefix)  # a bad --prefix fails before any work
    started = time.perf_counter()
    jobs = _worker_count(paths, options)
    merger = Merger(options)
    plans: list[Plan] = []
    inputs: list[InputStats] = []
    pool: ProcessPoolExecutor | None = None
    if jobs > 1:
        # forkserver: workers do not inherit the caller's threads or open files.
        pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("forkserver"))
    path = ""
    try:
        in_flight: collections.deque[Future[ChunkResult]] = collections.deque()
        for path in paths:
            plan, stream, stats = _prepare(path, options)
            plans.append(plan)
            inputs.append(stats)
            for data in stream:
                if pool is None:
                    merger.add(parse_chunk(plan.log_format, plan.prefix, data, options))
                    continue
                # Bounded read-ahead keeps memory flat: at most two chunks per worker wait.
                while len(in_flight) >= 2 * jobs:
                    merger.add(in_flight.popleft().result())
                in_flight.append(
                    pool.submit(parse_chunk, plan.log_format, plan.prefix, data, options)
                )
        while in_flight:
            merger.add(in_flight.popleft().result())
    except BrokenProcessPool:
        raise LogWorkerError(_worker_death(pool, path)) from None
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    aggregate = merger.finish()
    elapsed = time.perf_counter() - started
    return aggregate, plans, inputs, options, jobs, elapsed


def _worker_death(pool: ProcessPoolExecutor | None, path: str) -> str:
    """What to tell the user when the pool broke: which worker died how, and what to try."""
    codes = [
        getattr(process, "exitcode", None)
        for process in (getattr(pool, "_processes", None) or {}).values()
    ]
    # the pool terminates the other workers itself once one died: SIGTERM is not the cause
    causes = [c for c in codes if isinstance(c, int) and c != 0 and c != -signal.SIGTERM]
    if not causes:
        how = "it ended abruptly"
    elif causes[0] == -signal.SIGKILL:
        how = "killed by SIGKILL, as the kernel's out-of-memory killer does"
    elif causes[0] < 0:
        try:
            how = f"killed by {signal.Signals(-causes[0]).name}"
        except ValueError:
            how = f"killed by signal {-causes[0]}"
    else:
        how = f"exit code {causes[0]}"
    where = f" reading {'stdin' if path == '-' else path}" if path else ""
    return (
        f"a worker process died{where} ({how}); retry with --jobs 1 (one process holds "
        "one chunk at a time) or a lower --max-entry-bytes"
    )


def build_report(
    aggregate: Aggregate,
    plans: Sequence[Plan],
    inputs: Sequence[InputStats],
    options: LogOptions,
    jobs: int,
    elapsed: float,
    *,
    registry: Registry | None = None,
) -> Report:
    name = ", ".join(Path(p.path).name if p.path != "-" else "stdin" for p in plans) or "log"
    target = Target(kind=KIND, name=name)
    summary = summarize(aggregate, plans, inputs, options, jobs, elapsed)
    # `queries` at the top of the summary is the one figure most consumers want
    report = Report(targets=[target], summary={"queries": summary["queries"], "log": summary})
    findings, errors = run_checks(
        (registry or default_plugins().checks).for_kind(KIND),
        LogContext(aggregate, name, options),
        target=name,
    )
    report.findings.extend(findings)
    report.errors.extend(errors)
    filtered = [
        f"{flag} {value}"
        for flag, value in (("--db", options.database), ("--user", options.user))
        if value is not None
    ]
    if filtered and aggregate.filtered_out and not aggregate.queries:
        # Every execution left out: the likely cause is a prefix read wrong, whose %d or %u
        # took in more than the name.
        prefixes = sorted({p.prefix for p in plans if p.log_format in PREFIXED})
        hint = f"; the log_line_prefix {prefixes[0]!r} may be wrong: give --prefix" if (
            prefixes) else ""  # fmt: skip
        report.errors.append(
            CheckError(
                check="log_filter",
                message=f"{' and '.join(filtered)} left out all {aggregate.filtered_out} "
                f"entries{hint}",
                target=name,
            )
        )
    for plan in plans:
        if plan.log_format not in PREFIXED:
            continue
        generic = plan.prefix == GENERIC
        lacking = [
            f"{flag} needs {escape}"
            for flag, used, escape in (
                ("--since/--until", options.since or options.until, "%t or %m"),
                ("--db", options.database is not None, "%d"),
                ("--user", options.user is not None, "%u"),
            )
            if used
            and (
                (escape == "%t or %m" and not generic and not compile_prefix(plan.prefix).ts_kind)
                or (escape in ("%d", "%u") and (generic or escape not in plan.prefix))
            )
        ]
        if lacking:
            report.errors.append(
                CheckError(
                    check="log_filter",
                    message=f"{plan.path}: log_line_prefix {plan.prefix!r} has no field for "
                    f"the filter ({'; '.join(lacking)} in the prefix)",
                    target=name,
                )
            )
    for message in aggregate.warnings:
        report.errors.append(CheckError(check="log_filter", message=message, target=name))
    cut = report.summary["log"]["cut_entries"]
    if cut:
        report.errors.append(
            CheckError(check="log_input", message=cut_message(report.summary["log"]), target=name)
        )
    for stats in inputs:
        if stats.warning:
            report.errors.append(
                CheckError(check="log_input", message=f"{stats.path}: {stats.warning}", target=name)
            )
        if stats.read_error:
            report.errors.append(
                CheckError(
                    check="log_input",
                    message=f"{stats.path}: input ends early ({stats.read_error}); "
                    f"{stats.bytes_read} bytes read",
                    target=name,
                )
            )
    return report


def cut_message(log: dict[str, Any]) -> str:
    """What was cut to keep memory bounded, in one line (for errors and the terminal)."""
    n, limit = log["cut_entries"], log["max_entry_bytes"]
    return (
        f"{n:,} log entr{'y' if n == 1 else 'ies'} over --max-entry-bytes ({limit:,} bytes) "
        f"cut: {log['cut_bytes']:,} bytes left out (stderr entries keep their first "
        f"{limit:,} bytes, csvlog/jsonlog records are left out whole); a larger "
        "--max-entry-bytes keeps more"
    )


def summarize(
    aggregate: Aggregate,
    plans: Sequence[Plan],
    inputs: Sequence[InputStats],
    options: LogOptions,
    jobs: int,
    elapsed: float,
) -> dict[str, Any]:
    statements = [s for s in aggregate.statements.values() if s.calls]
    by_total = sorted(statements, key=lambda s: (-s.total, s.key))[: options.top]
    by_count = sorted(statements, key=lambda s: (-s.calls, -s.total, s.key))[: options.top]
    total_bytes = sum(s.bytes_read for s in inputs)
    classes: dict[str, int] = {}
    for state, n in aggregate.sqlstates.items():
        classes[state[:2]] = classes.get(state[:2], 0) + n
    errors_total = sum(aggregate.error_levels.values())
    temp_total = sum(c.count for c in aggregate.temp_files.values())
    temp_bytes = sum(c.total for c in aggregate.temp_files.values())
    waits = sum(c.count for c in aggregate.lock_waits.values())
    pooler = {"pgbouncer": aggregate.pooler.summary()} if aggregate.pooler.lines else {}
    if aggregate.maintenance.seen:
        pooler["maintenance"] = aggregate.maintenance.summary(
            aggregate.first_ts, aggregate.last_ts, options.top
        )
    return {
        **pooler,
        "queries": aggregate.queries,
        "total_ms": round(aggregate.total_ms, 3),
        "entries": aggregate.entries,
        "first": aggregate.first_ts or None,
        "last": aggregate.last_ts or None,
        "distinct_statements": len(statements),
        "files": [
            {
                "path": p.path,
                "format": p.log_format,
                "prefix": p.prefix if p.log_format in PREFIXED else None,
                "compression": s.compression or None,
                "bytes": s.bytes_read,
                "read_error": s.read_error or None,
                **s.extra,
            }
            for p, s in zip(plans, inputs, strict=True)
        ],
        "bytes": total_bytes,
        "elapsed_s": round(elapsed, 3),
        "mb_per_s": round(total_bytes / 1e6 / elapsed, 1) if elapsed > 0 else None,
        "jobs": jobs,
        "top_by_total_time": [s.to_json() for s in by_total],
        "top_by_count": [s.to_json() for s in by_count],
        "slowest": [e.to_json() for e in aggregate.slowest_executions()],
        "per_minute": [
            {
                "minute": minute,
                "queries": int(v[0]),
                "total_ms": round(v[1], 3),
                "max_ms": round(v[2], 3),
                "errors": int(v[3]),
            }
            for minute, v in sorted(aggregate.per_minute.items())
        ],
        "prepared": {
            "parse": {
                "count": aggregate.prepare.count,
                "total_ms": round(aggregate.prepare.total, 3),
            },
            "bind": {"count": aggregate.bind.count, "total_ms": round(aggregate.bind.total, 3)},
        },
        "logged_statements": aggregate.logged_statements,
        "auto_explain": {"plans": aggregate.plans, "attached": aggregate.plans_attached},
        "errors": {
            "total": errors_total,
            "by_level": dict(sorted(aggregate.error_levels.items())),
            "by_class": [
                {"class": c, "name": SQLSTATE_CLASSES.get(c, ""), "count": n}
                for c, n in sorted(classes.items(), key=lambda kv: (-kv[1], kv[0]))
            ],
            "by_sqlstate": dict(
                sorted(aggregate.sqlstates.items(), key=lambda kv: (-kv[1], kv[0]))
            ),
            "top_messages": [
                {
                    "message": redact(g.template),
                    "level": g.level,
                    "sqlstate": g.sqlstate or None,
                    "count": g.count,
                    "example": g.message[:2000],
                    "statement": redact(g.statement) or None,
                }
                for g in sorted(aggregate.errors.values(), key=lambda g: (-g.count, g.template))[
                    : options.top
                ]
            ],
        },
        "temp_files": {
            "count": temp_total,
            "total_bytes": int(temp_bytes),
            "max_bytes": int(max((c.max for c in aggregate.temp_files.values()), default=0)),
            "top_statements": [
                {
                    "query": redact(c.label),
                    "count": c.count,
                    "total_bytes": int(c.total),
                    "max_bytes": int(c.max),
                }
                for c in sorted(aggregate.temp_files.values(), key=lambda c: (-c.total, c.label))[
                    : options.top
                ]
            ],
        },
        "lock_waits": {
            "count": waits,
            "acquired": aggregate.locks_acquired,
            "total_wait_ms": round(sum(c.total for c in aggregate.lock_waits.values()), 3),
            "max_wait_ms": round(
                max((c.max for c in aggregate.lock_waits.values()), default=0.0), 3
            ),
            "top_statements": [
                {
                    "query": redact(c.label),
                    "count": c.count,
                    "total_wait_ms": round(c.total, 3),
                    "max_wait_ms": round(c.max, 3),
                }
                for c in sorted(aggregate.lock_waits.values(), key=lambda c: (-c.count, c.label))[
                    : options.top
                ]
            ],
        },
        "bad_entries": {"count": aggregate.corrupt, "samples": aggregate.corrupt_samples},
        "max_entry_bytes": options.max_entry_bytes,
        "cut_entries": aggregate.cut_entries + sum(s.cuts.entries for s in inputs),
        "cut_bytes": aggregate.cut_bytes + sum(s.cuts.bytes for s in inputs),
        "filtered_out": aggregate.filtered_out,
        "percentiles": (
            f"exact for statements with up to {EXACT_LIMIT} executions, "
            "otherwise within 1% (log-bucket sketch); nearest-rank"
        ),
    }

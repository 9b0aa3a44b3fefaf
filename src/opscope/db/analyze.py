"""`analyze_database`: the PostgreSQL checks against one database, into a Report
(`opscope analyze db`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, cast

import psycopg
from psycopg import sql

from opscope.checks import Registry, run_checks
from opscope.config import Config
from opscope.db.activity import activity_summary
from opscope.db.catalog import Summary
from opscope.db.connection import (
    ConnectionFactory,
    SqlRunner,
    connect,
    describe_dsn,
    parse_dsn,
    raise_if_lost,
)
from opscope.db.context import DATABASE, KIND, DbContext
from opscope.db.fixes import sql_changes
from opscope.db.history import SizeHistory
from opscope.db.monitor.snapshot import NoHistory, StoredWindow, stored_window
from opscope.db.settings import SessionSettings, settings_for
from opscope.errors import first_line
from opscope.findings import CheckError, Clock, Finding, Report, Target, utc_now
from opscope.fixes import group_fixes
from opscope.monitor.collector import History
from opscope.plugins import default_plugins

#: checks whose fixes `--apply` may run; each is safe to run on a live server
APPLICABLE = frozenset({"stale_statistics"})


def target_name(dsn: str) -> str:
    info = parse_dsn(dsn)  # None too when libpq would read a password as the database name
    if info is None:
        return "database"
    return str(info.get("dbname") or info.get("user") or "database")


def summary_dict(s: Summary, queries_sent: int) -> dict[str, Any]:
    usable = s.max_connections - s.reserved_connections
    return {
        "database": s.database,
        "server_version": s.server_version,
        "database_bytes": s.database_bytes,
        "cache_hit_ratio": None if s.cache_hit_ratio is None else round(s.cache_hit_ratio, 4),
        "connections": s.connections,
        "max_connections": s.max_connections,
        "connection_usage": round(s.connections / usable, 3) if usable > 0 else None,
        "stats_reset": s.stats_reset.isoformat() if s.stats_reset else None,
        "stats_since": s.stats_since.isoformat(),
        "xid_age": s.xid_age,
        "extensions": {
            "pg_stat_statements": s.has_pg_stat_statements,
            "hypopg": s.has_hypopg,
            "pg_qualstats": s.has_pg_qualstats,
        },
        "catalog_queries": queries_sent,
        "superuser": s.superuser,
    }


def analyze_database(
    config: Config,
    dsn: str,
    *,
    name: str | None = None,
    window_s: float | None = None,
    only: Sequence[str] | None = None,
    apply: bool = False,
    registry: Registry | None = None,
    connect: ConnectionFactory = connect,
    clock: Clock = utc_now,
    echo: Callable[[str], None] = lambda _: None,
    history: History | None = None,
    since: datetime | None = None,
) -> Report:
    """The health report of one database: every check of the database scope, in `registry`
    (default: the installed areas' and plugins').

    With `history` (the store of `opscope serve`), index usage is judged over the whole
    window it observed; with `since` too, the statements', tables' and indexes' counters
    are what the stored snapshots say happened from then on.

    Raises TargetConnectionError when the database cannot be reached, ValueError for an
    unknown check in `only`, NoHistory when `since` asks for history the store does not
    hold; everything after that ends up in the report, failures included.
    """
    name = name or target_name(dsn)
    registry = registry or default_plugins().checks
    checks = registry.select(KIND, DATABASE, only)
    settings = settings_for(config, name)
    window: StoredWindow | None = None
    observed: StoredWindow | None = None
    if since is not None:
        if history is None:
            raise ValueError("--since reads the history store: set serve.store")
        window = stored_window(history, name, since)
    elif history is not None:
        try:
            observed = stored_window(history, name, None)
        except NoHistory:
            observed = None
    report = Report(generated_at=clock())
    conn = connect(dsn, settings.session)
    try:
        runner = SqlRunner(conn)
        sizes = SizeHistory.open(config.resolved_state_dir(), describe_dsn(dsn))
        context = DbContext(
            target=name,
            runner=runner,
            settings=settings,
            window_s=window_s,
            history=sizes,
            window=window,
            observed=observed,
        )
        try:
            summary = context.summary
            if window is not None:
                summary = windowed_counters(context, window)
        except psycopg.Error as exc:
            raise_if_lost(conn, dsn)
            report.targets.append(Target(kind=KIND, name=name))
            report.errors.append(CheckError(check="summary", message=first_line(exc), target=name))
            return report
        report.targets.append(Target(kind=KIND, name=name, server_version=summary.server_version))
        if window_s:
            echo(f"sampling pg_stat_statements on {name} for {window_s:g} s")
        findings, errors = run_checks(checks, context, target=name)
        # a link lost half-way leaves errors that all say so: one line, exit code 2, instead
        raise_if_lost(conn, dsn)
        report.findings.extend(findings)
        report.errors.extend(errors)
        if sizes.save_error:
            report.errors.append(
                CheckError(check="large_table", target=name, message=sizes.save_error)
            )
        activity = activity_summary(context)
        report.summary[name] = summary_dict(summary, runner.queries_sent)
        report.summary[name]["activity"] = activity
        if window is not None:
            report.summary[name]["window"] = {
                "since": window.start.isoformat(),
                "until": window.end.isoformat(),
                "seconds": round(window.seconds, 1),
                "source": "stored snapshots",
            }
    finally:
        conn.close()
    if apply:
        applied, failed = apply_fixes(report.findings, dsn, settings.session, connect, echo)
        report.summary[name]["applied"] = applied
        report.errors.extend(failed)
    report.fixes = group_fixes(report.findings, sql_changes)
    return report


def windowed_counters(context: DbContext, window: StoredWindow) -> Summary:
    """Put what the stored snapshots say happened in the window in place of the cumulative
    counters of tables and indexes, and date the statistics from the window's start."""
    catalog = context.catalog
    tables, indexes = window.tables(), window.indexes()
    # the counters of a Usage are the records' own fields (seq_scan, idx_scan, ...)
    catalog.tables = [
        replace(t, **cast(dict[str, Any], tables[t.qualified].counters))
        if t.qualified in tables
        else t
        for t in catalog.tables
    ]
    catalog.indexes = [
        replace(i, **cast(dict[str, Any], indexes[i.qualified].counters))
        if i.qualified in indexes
        else i
        for i in catalog.indexes
    ]
    catalog.summary = replace(catalog.summary, stats_reset=window.start)
    return catalog.summary


def apply_fixes(
    findings: Sequence[Finding],
    dsn: str,
    session: SessionSettings,
    connect: ConnectionFactory,
    echo: Callable[[str], None],
) -> tuple[list[str], list[CheckError]]:
    """Run the fixes of applicable findings in a writable session, printing each first.

    Statements are composed from identifiers with psycopg.sql, never from the fix text. One
    that fails or that the server skips (ANALYZE by a role that does not own the table only
    warns) becomes an error entry; the others still run, and the report is kept."""
    todo = [f for f in findings if f.check in APPLICABLE]
    if not todo:
        return [], []
    done: list[str] = []
    errors: list[CheckError] = []
    # ANALYZE of a big table outlasts a short statement_timeout; it takes only a SHARE UPDATE
    # EXCLUSIVE lock, which blocks no reads or writes. Set at connect, so that the session
    # has no query deadline either (keepalives still end a dead link).
    session = session.model_copy(update={"statement_timeout_ms": 0})
    conn = connect(dsn, session, writable=True)
    notices: list[str] = []
    conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
    try:
        for f in todo:
            stmt = sql.SQL("ANALYZE {}.{}").format(
                sql.Identifier(str(f.evidence["schema"])), sql.Identifier(str(f.evidence["table"]))
            )
            text = stmt.as_string(conn) + ";"
            echo(f"applying: {text}")
            notices.clear()
            try:
                conn.execute(stmt)
            except psycopg.Error as exc:
                errors.append(
                    CheckError(
                        check=f.check, target=f.target, message=f"{text} failed: {first_line(exc)}"
                    )
                )
                continue
            # 'skipping "t" --- only table or database owner can analyze it' up to 16,
            # 'permission denied to analyze "t", skipping it' from 17
            skipped = [n for n in notices if "skipping" in n]
            if skipped:
                errors.append(
                    CheckError(check=f.check, target=f.target, message=f"{text} {skipped[0]}")
                )
                continue
            done.append(text)
    finally:
        conn.close()
    return done, errors

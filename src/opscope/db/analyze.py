"""`analyze_database`: the PostgreSQL checks against one database, into a Report
(`opscope analyze db`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from opscope.checks import Registry, run_checks
from opscope.config import Config
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
from opscope.db.settings import SessionSettings, settings_for
from opscope.errors import first_line
from opscope.findings import CheckError, Clock, Finding, Report, Target, utc_now
from opscope.fixes import group_fixes
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
) -> Report:
    """The health report of one database: every check of the database scope, in `registry`
    (default: the installed areas' and plugins').

    Raises TargetConnectionError when the database cannot be reached, ValueError for an
    unknown check in `only`; everything after that ends up in the report, failures included.
    """
    name = name or target_name(dsn)
    registry = registry or default_plugins().checks
    checks = registry.select(KIND, DATABASE, only)
    settings = settings_for(config, name)
    report = Report(generated_at=clock())
    conn = connect(dsn, settings.session)
    try:
        runner = SqlRunner(conn)
        history = SizeHistory.open(config.resolved_state_dir(), describe_dsn(dsn))
        context = DbContext(
            target=name, runner=runner, settings=settings, window_s=window_s, history=history
        )
        try:
            summary = context.summary
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
        if history.save_error:
            report.errors.append(
                CheckError(check="large_table", target=name, message=history.save_error)
            )
        report.summary[name] = summary_dict(summary, runner.queries_sent)
    finally:
        conn.close()
    if apply:
        applied, failed = apply_fixes(report.findings, dsn, settings.session, connect, echo)
        report.summary[name]["applied"] = applied
        report.errors.extend(failed)
    report.fixes = group_fixes(report.findings, sql_changes)
    return report


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

"""`opscope analyze db`: run the PostgreSQL checks against one database into a Report."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from opscope.checks import Check, Registry, default_registry, run_checks
from opscope.config import Config
from opscope.db.catalog import Summary
from opscope.db.connection import SqlRunner, connect, describe_dsn
from opscope.db.context import KIND, DbContext
from opscope.db.history import SizeHistory
from opscope.findings import CheckError, Finding, Report, Target

#: checks whose fixes `--apply` may run; each is safe to run on a live server
APPLICABLE = frozenset({"stale_statistics"})


def target_name(dsn: str) -> str:
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "database"
    return str(info.get("dbname") or info.get("user") or "database")


def select_checks(registry: Registry, only: Sequence[str] | None) -> list[Check]:
    checks = registry.for_kind(KIND)
    if not only:
        return checks
    unknown = [c for c in only if registry.find(KIND, c) is None]
    if unknown:
        raise ValueError(f"unknown check {unknown[0]!r} (see `opscope checks` for the list)")
    return [c for c in checks if c.id in set(only)]


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
    dsn: str,
    config: Config,
    *,
    name: str | None = None,
    window_s: float | None = None,
    only: Sequence[str] | None = None,
    apply: bool = False,
    registry: Registry | None = None,
    echo: Callable[[str], None] = lambda _: None,
) -> Report:
    """Raises TargetConnectionError when the database cannot be reached; everything after
    that ends up in the report, failures included."""
    name = name or target_name(dsn)
    checks = select_checks(registry or default_registry(), only)
    conn = connect(dsn, config.session)
    try:
        runner = SqlRunner(conn)
        history = SizeHistory.open(config.resolved_state_dir(), describe_dsn(dsn))
        context = DbContext(
            target=name,
            runner=runner,
            thresholds=config.thresholds_for(name),
            window_s=window_s,
            history=history,
            plans=config.plans,
            advisor=config.advisor,
        )
        report = Report()
        try:
            summary = context.summary
        except psycopg.Error as exc:
            report.targets.append(Target(kind=KIND, name=name))
            report.errors.append(
                CheckError(check="summary", message=str(exc).strip().splitlines()[0], target=name)
            )
            return report
        report.targets.append(Target(kind=KIND, name=name, server_version=summary.server_version))
        if window_s:
            echo(f"sampling pg_stat_statements on {name} for {window_s:g} s")
        findings, errors = run_checks(checks, context, target=name)
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
        applied, failed = apply_fixes(report.findings, dsn, config, echo)
        report.summary[name]["applied"] = applied
        report.errors.extend(failed)
    return report


def apply_fixes(
    findings: Sequence[Finding], dsn: str, config: Config, echo: Callable[[str], None]
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
    conn = connect(dsn, config.session, writable=True)
    notices: list[str] = []
    conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
    try:
        # ANALYZE of a big table outlasts a short statement_timeout; it takes only a
        # SHARE UPDATE EXCLUSIVE lock, which blocks no reads or writes
        conn.execute("SELECT set_config('statement_timeout', '0', false)")
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
                first = str(exc).strip().splitlines()
                errors.append(
                    CheckError(
                        check=f.check,
                        target=f.target,
                        message=f"{text} failed: {first[0] if first else exc!r}",
                    )
                )
                continue
            skipped = [n for n in notices if n.startswith("skipping")]
            if skipped:
                errors.append(
                    CheckError(check=f.check, target=f.target, message=f"{text} {skipped[0]}")
                )
                continue
            done.append(text)
    finally:
        conn.close()
    return done, errors

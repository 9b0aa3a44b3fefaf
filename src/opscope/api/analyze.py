"""`analyze_api`: the API checks against one API, from a /metrics scrape of its middleware
and/or its access logs, into a Report (`opscope analyze api`).

Each source is a target of its own (`NAME` for the scrape, `NAME (access log)` for the
logs): route templates of the two do not match (the app's `/orders/{order_id}`, the log's
folded `/orders/{id}`), and a log knows only counts, statuses and latency.

With a database configured for the API (`apis.NAME.database`), the index advisor studies
that database's workload, and a slow or database-heavy route whose statements it would help
gets the index as its fix: one fix, shared with what `opscope indexes advise` reports.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opscope.api.accesslog import LogAggregate, read_logs
from opscope.api.context import ACCESS_LOG, KIND, METRICS, ApiContext, IndexAdvice
from opscope.api.endpoints import Endpoint
from opscope.api.scrape import difference, endpoints, fetch, parse, started_at
from opscope.api.settings import API, apis, thresholds_for
from opscope.api.statements import statement_key
from opscope.checks import Registry, run_checks
from opscope.config import Config
from opscope.db.analyze import target_name as db_target_name
from opscope.db.fixes import sql_changes
from opscope.db.settings import databases
from opscope.errors import first_line
from opscope.findings import CheckError, Clock, Report, Target, utc_now
from opscope.fixes import group_fixes
from opscope.plugins import default_plugins
from opscope.redact import redact

if TYPE_CHECKING:
    import httpx

#: endpoints listed in a target's summary, busiest first
SUMMARY_ENDPOINTS = 50

#: (config, dsn, name) -> the advisor's report; injectable for tests
Advise = Callable[[Config, str, str], Report]


def _advise(config: Config, dsn: str, name: str) -> Report:
    from opscope.db.advisor.analysis import advise_indexes

    return advise_indexes(config, dsn, name=name)


def target_name(metrics_url: str | None, access_logs: Sequence[str]) -> str:
    if metrics_url:
        # host and port only: a URL's user:password@ never names anything
        parts = urlsplit(metrics_url)
        host = parts.hostname or "api"
        return f"{host}:{parts.port}" if parts.port else host
    return "api" if not access_logs else access_logs[0].rsplit("/", 1)[-1]


def database_dsn(config: Config, database: str) -> tuple[str, str]:
    """(what to call it in text, DSN) of a database given by name (under `databases:`) or
    by DSN, which is shown with its password masked."""
    named = databases(config)
    if database in named:
        return database, named[database].dsn
    return redact(database), database


def index_advice(
    config: Config, database: str, advise: Advise
) -> tuple[dict[str, IndexAdvice], str | None, list[CheckError]]:
    """The advisor's indexes by the fingerprint of each statement they help."""
    shown, dsn = database_dsn(config, database)
    try:
        named = database in databases(config)
        report = advise(config, dsn, database if named else db_target_name(dsn))
    except Exception as exc:  # an unreachable database must not take the API report down
        return {}, None, [CheckError(check="index_advice", message=first_line(exc))]
    out: dict[str, IndexAdvice] = {}
    for f in report.findings:
        if not f.fix_sql:
            continue
        saved = f.evidence.get("time_saved_ms")
        advice = IndexAdvice(
            database=shown,
            title=f.title,
            fix_sql=f.fix_sql,
            time_saved_ms=float(saved) if isinstance(saved, int | float) else None,
        )
        for s in f.evidence.get("statements", ()):
            query = s.get("query") if isinstance(s, dict) else None
            if isinstance(query, str):
                out.setdefault(statement_key(query).fingerprint, advice)
    note = None if out else "the advisor found no index worth its cost"
    errors = [e.model_copy(update={"check": "index_advice"}) for e in report.errors]
    return out, note, errors


def endpoint_summary(ctx: ApiContext, e: Endpoint) -> dict[str, Any]:
    def r(v: float | None, n: int = 2) -> float | None:
        return None if v is None else round(v, n)

    def share(part: float | None) -> float | None:
        return r(part / e.duration_s, 3) if part is not None and e.duration_s else None

    return {
        "route": e.route,
        "requests": int(e.requests),
        "rate_per_s": r(ctx.rate(e), 3),
        "p50_ms": r(e.quantile_ms(0.5)),
        "p95_ms": r(e.quantile_ms(0.95)),
        "p99_ms": r(e.quantile_ms(0.99)),
        "error_rate": round(e.error_rate, 4),
        "db_share": share(e.db_s),
        "queries_per_request": r(e.queries / e.requests) if e.queries is not None else None,
        "serialization_share": share(e.serialization_s),
        "n_plus_one_requests": int(e.n_plus_one) if e.n_plus_one is not None else None,
        "repeat_share": r(e.repeat_share, 3),
        "cache_hit_ratio": r(e.cache_hit_ratio, 3),
    }


def _summary(ctx: ApiContext, extra: dict[str, Any]) -> dict[str, Any]:
    ordered = sorted(
        ctx.endpoints.values(), key=lambda e: (-(e.duration_s or 0.0), -e.requests, e.route)
    )
    return {
        "source": ctx.source,
        **extra,
        "elapsed_s": None if ctx.elapsed_s is None else round(ctx.elapsed_s, 1),
        "requests": int(sum(e.requests for e in ctx.endpoints.values())),
        "endpoint_count": len(ctx.endpoints),
        "endpoints": [endpoint_summary(ctx, e) for e in ordered[:SUMMARY_ENDPOINTS]],
    }


def analyze_api(
    config: Config,
    *,
    name: str | None = None,
    metrics_url: str | None = None,
    access_logs: Sequence[str] = (),
    log_format: str | None = None,
    window_s: float | None = None,
    database: str | None = None,
    only: Sequence[str] | None = None,
    registry: Registry | None = None,
    client: httpx.Client | None = None,
    advise: Advise = _advise,
    clock: Clock = utc_now,
    sleep: Callable[[float], None] = time.sleep,
    echo: Callable[[str], None] = lambda _: None,
) -> Report:
    """The API report of one API. Its settings come from `apis.NAME` when `name` is
    configured; the keyword arguments given win over them.

    Raises ScrapeError when the metrics cannot be read, LogInputError for an unreadable log,
    ValueError for an unknown check in `only` or nothing to read."""
    import httpx

    target = apis(config).get(name) if name else None
    metrics_url = metrics_url or (target.metrics_url if target else None)
    access_logs = list(access_logs) or list(target.access_logs if target else ())
    log_format = log_format or (target.log_format if target else "auto")
    database = database or (target.database if target else None)
    shown = database_dsn(config, database)[0] if database else None
    if not metrics_url and not access_logs:
        raise ValueError("nothing to analyze: give a metrics URL or access logs")
    name = name or target_name(metrics_url, access_logs)
    registry = registry or default_plugins().checks
    checks = registry.select(KIND, "main", only)
    thresholds = thresholds_for(config, name)
    report = Report(generated_at=clock())
    contexts: list[tuple[ApiContext, dict[str, Any]]] = []
    if metrics_url:
        own = client is None
        http = client or httpx.Client(timeout=API.of(config).timeout_s)
        try:
            shown_url = redact(metrics_url)
            samples = parse(fetch(metrics_url, http), shown_url)
            if window_s:
                echo(f"scraping {shown_url} again in {window_s:g} s")
                sleep(window_s)
                samples = difference(samples, parse(fetch(metrics_url, http), shown_url))
        finally:
            if own:
                http.close()
        start = started_at(samples)
        elapsed = window_s or (clock().timestamp() - start if start else None)
        ctx = ApiContext(
            target=name,
            endpoints=endpoints(samples),
            thresholds=thresholds,
            source=METRICS,
            elapsed_s=elapsed if elapsed and elapsed > 0 else None,
            database=shown,
        )
        contexts.append((ctx, {"metrics_url": redact(metrics_url), "window_s": window_s}))
    if access_logs:
        agg: LogAggregate = read_logs(access_logs, log_format)
        ctx = ApiContext(
            target=f"{name} (access log)" if metrics_url else name,
            endpoints=agg.finish(),
            thresholds=thresholds,
            source=ACCESS_LOG,
            database=shown,
        )
        log_info = {
            "access_logs": list(access_logs),
            "formats": sorted(set(agg.formats.values())),
            "lines": agg.lines,
            "parsed": agg.parsed,
            "skipped_long_lines": agg.skipped_long,
            "latency_known": agg.has_latency,
        }
        contexts.append((ctx, log_info))
    if database and any(e.statements for ctx, _ in contexts for e in ctx.endpoints.values()):
        echo(f"asking the index advisor about {database}")
        advice, note, errors = index_advice(config, database, advise)
        report.errors.extend(e.model_copy(update={"target": name}) for e in errors)
        for ctx, _ in contexts:
            ctx.advice, ctx.advice_note = advice, note
    for ctx, extra in contexts:
        report.targets.append(Target(kind=KIND, name=ctx.target))
        findings, errors = run_checks(checks, ctx, target=ctx.target)
        report.findings.extend(findings)
        report.errors.extend(errors)
        summary = _summary(ctx, extra)
        if shown:
            summary["database"] = shown
        report.summary[ctx.target] = summary
    report.fixes = group_fixes(report.findings, sql_changes)
    return report

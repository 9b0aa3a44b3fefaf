"""Every renderer, pinned byte for byte: one fixed Report (fixed clock, findings and
summaries from every area there is) rendered to terminal (no colour, 100 columns), Markdown,
HTML and JSON, compared with the files in tests/golden/.

After an intended change of the output, regenerate them and review the diff:

    OPSCOPE_REGENERATE_GOLDEN=1 .venv/bin/pytest tests/test_golden.py
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opscope.config import Config
from opscope.dags.analyze import analyze_dags
from opscope.dags.source import IMPORT, DagSource
from opscope.db.fixes import sql_changes
from opscope.db.logs.analyze import analyze_logs
from opscope.db.logs.options import LogOptions
from opscope.findings import CheckError, Finding, Report, Severity, Target
from opscope.fixes import group_fixes
from opscope.report import render

GOLDEN = Path(__file__).resolve().parent / "golden"
WHEN = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SUFFIX = {"terminal": "txt", "markdown": "md", "html": "html", "json": "json"}

LOG = """\
2026-11-30 11:58:01.100 UTC [4711] LOG:  duration: 1520.250 ms  statement: select * from orders where customer_id = 42
2026-11-30 11:58:02.200 UTC [4711] LOG:  duration: 3.100 ms  statement: select * from orders where id = 7
2026-11-30 11:58:03.300 UTC [4712] LOG:  duration: 4.900 ms  statement: select * from orders where id = 8
2026-11-30 11:59:04.400 UTC [4712] ERROR:  relation "ordres" does not exist at character 15
2026-11-30 11:59:04.400 UTC [4712] STATEMENT:  select * from ordres
2026-11-30 11:59:05.500 UTC [4713] LOG:  temporary file: path "base/pgsql_tmp/pgsql_tmp4713.0", size 2400000
2026-11-30 11:59:05.500 UTC [4713] STATEMENT:  select * from orders order by total
"""  # noqa: E501


def _f(check: str, category: str, severity: Severity, obj: str, **fields: object) -> Finding:
    return Finding.make(
        check=check,
        category=category,
        severity=severity,
        target=str(fields.pop("target", "shop")),
        object=obj,
        title=str(fields.pop("title")),
        **fields,  # type: ignore[arg-type]
    )


def _database_findings() -> list[Finding]:
    index_sql = "CREATE INDEX CONCURRENTLY orders_customer_id_idx ON shop.orders (customer_id);"
    return [
        _f(
            "fk_without_index",
            "indexes",
            Severity.warning,
            "shop.orders",
            title="Foreign key orders_customer_id_fkey on shop.orders(customer_id) has no index",
            columns=["customer_id"],
            detail="Deleting a customer scans the whole of shop.orders.",
            recommendation="Index shop.orders(customer_id).",
            fix_sql=index_sql,
        ),
        _f(
            "missing_index",
            "indexes",
            Severity.warning,
            "shop.orders",
            title="Missing index on shop.orders (customer_id): 1 statement, 99% cheaper",
            columns=["customer_id"],
            evidence={"time_saved_ms": 3030.5, "cost_saving": 6129177.0, "size": "7.5 MB"},
            recommendation="Create it concurrently (no write lock).",
            fix_sql=index_sql,
        ),
        _f(
            "plan_seq_scan",
            "plans",
            Severity.warning,
            "shop.orders",
            title="Sequential scan of shop.orders (300,000 rows) keeps 0.0% of them",
            columns=["customer_id"],
            evidence={"query": "SELECT * FROM shop.orders WHERE customer_id = $1"},
            # another name for the same index: still the same fix
            fix_sql=index_sql.replace("_idx ", "_idx1 "),
        ),
        _f(
            "unused_index",
            "indexes",
            Severity.info,
            "shop.events_account",
            title="Unused index shop.events_account on shop.events (1.0 MB)",
            evidence={"bytes_freed": 1048576, "idx_scan": 0},
            fix_sql="DROP INDEX CONCURRENTLY shop.events_account;",
        ),
        _f(
            "redundant_index",
            "indexes",
            Severity.warning,
            "shop.events_account",
            title="Index shop.events_account is a prefix of shop.events_account_time",
            evidence={"bytes_freed": 1048576},
            fix_sql="DROP INDEX CONCURRENTLY shop.events_account;",
        ),
        _f(
            "table_bloat",
            "tables",
            Severity.critical,
            "shop.sessions",
            title="shop.sessions is about 67% dead space (10.0 MB of 14.9 MB)",
            detail="A name with an escape: \x1b[31mred\x1b[0m and a <b>tag</b> | pipe `tick`",
            recommendation="Vacuum it.",
            fix_sql="VACUUM (ANALYZE) shop.sessions;",
        ),
        _f(
            "stale_statistics",
            "tables",
            Severity.warning,
            "shop.sessions",
            title="Statistics of shop.sessions are stale: 200,000 rows changed",
            fix_sql="ANALYZE shop.sessions;",
        ),
        _f(
            "large_table",
            "tables",
            Severity.info,
            "shop.orders",
            title="Large table shop.orders: 25.5 MB",
            evidence={"total_bytes": 26738688},
            recommendation="Watch its growth.",
        ),
    ]


def _api_findings() -> list[Finding]:
    index_sql = "CREATE INDEX CONCURRENTLY orders_customer_id_idx ON shop.orders (customer_id);"
    route = "/customers/{customer_id}/orders"
    return [
        _f(
            "slow_endpoint",
            "endpoints",
            Severity.warning,
            route,
            target="shop-api",
            title=f"Slow endpoint {route}: p95 700.0 ms over 1,200 requests, 2.00/s",
            detail="Its p95 is 700.0 ms (threshold 500.0 ms); of its time: database 92%, "
            "serialization 1%, the handler itself 7%.",
            evidence={
                "p95_ms": 700.0,
                "total_ms": 480000.0,
                "time_saved_ms": 3030.5,
                "fix_target": "shop",
            },
            recommendation=f"Create the index `opscope indexes advise shop` proposes: {index_sql}",
            fix_sql=index_sql,
        ),
        _f(
            "n_plus_one",
            "endpoints",
            Severity.warning,
            "/customers",
            target="shop-api",
            title="N+1 queries on /customers: one statement ran up to 12 times in one request",
            evidence={"query": "SELECT name FROM customers WHERE id = $1", "max_repeats": 12},
            recommendation="Fetch the rows in one query instead of one per item: a JOIN, or "
            "`WHERE id = ANY(%s)`; with the SQLAlchemy ORM, `selectinload`.",
        ),
        _f(
            "high_error_rate_endpoint",
            "endpoints",
            Severity.critical,
            "/checkout",
            target="shop-api",
            title="/checkout fails 100% of its requests (30 5xx of 30)",
            recommendation="RuntimeError escaped the handler 30 times.",
        ),
        _f(
            "cacheable_endpoint",
            "caching",
            Severity.info,
            route,
            target="shop-api",
            title=f"{route} is cacheable: 94% of its GETs repeat with the same answer; a 30 s "
            "TTL would answer about 91% from the cache",
            detail="94% of its 1,200 followed GETs repeated a request answered before, and 0% "
            "of those got a different answer; the TTL is 30 s because 90% of its answers stayed "
            "the same for 42.0 s or longer.",
            evidence={
                "repeat_share": 0.94,
                "change_share": 0.0,
                "ttl_s": 30,
                "projected_hit_ratio": 0.91,
                "handler_ms_saved_per_min": 33600.0,
                "db_ms_saved_per_min": 30900.0,
                "time_saved_ms": 336000.0,
                "rule": f'"{route}": CacheRule(ttl=30)',
            },
            recommendation=f'Cache it: add `"{route}": CacheRule(ttl=30)` to the rules of '
            "opscope.api.ResponseCache.",
        ),
        _f(
            "cache_low_hit_ratio",
            "caching",
            Severity.warning,
            "/catalog",
            target="shop-api",
            title="The cache rule for /catalog answers only 4% of 800 look-ups from the cache",
            evidence={"hit_ratio": 0.04, "hits": 32, "misses": 768, "bypasses": 0},
            recommendation="Only 3% of its GETs repeat an earlier request (790 distinct): most "
            "keys are asked for once. If the key holds what the answer does not depend on, narrow "
            "it (`query=(...)`: the query parameters the handler reads; fewer `vary` headers); "
            "otherwise drop the rule.",
        ),
    ]


def _health_findings() -> list[Finding]:
    return [
        _f(
            "blocked_queries",
            "locks",
            Severity.warning,
            "shop.accounts",
            title="2 sessions blocked behind pid 4711 (shop@shop, billing) for up to 12 s",
            detail="The head of the chain (idle in transaction) holds RowExclusiveLock on "
            "shop.accounts; its statement: UPDATE accounts SET balance = 0 WHERE id = 1.",
            evidence={"head": {"pid": 4711}, "depth": 2},
            recommendation="End what the head is doing.",
        ),
        _f(
            "idle_in_transaction",
            "activity",
            Severity.critical,
            "pid:4711",
            title="Session pid 4711 (shop@shop, billing) idle in transaction for 15.0 min",
            fix_sql="ALTER SYSTEM SET idle_in_transaction_session_timeout = '900s';\n"
            "SELECT pg_reload_conf();",
        ),
        _f(
            "work_mem_advice",
            "settings",
            Severity.warning,
            "work_mem",
            title="1 statement spills to disk at work_mem 4MB: set it to 64MB server-wide",
            evidence={"recommended": "64MB", "recommended_bytes": 67108864},
            fix_sql="ALTER SYSTEM SET work_mem = '64MB';\nSELECT pg_reload_conf();",
        ),
    ]


def _resource_findings() -> list[Finding]:
    return [
        _f(
            "pool_saturation",
            "pools",
            Severity.warning,
            "pool:shop/small",
            target="web-1",
            title="Pool small of shop ran out: 85% of 1,200 checkouts waited",
            detail="Little's law: 40.0 checkouts/s x 50.0 ms held = 2.00 connections busy on "
            "average.",
            evidence={"recommended_per_process": 6, "offered_load_connections": 2.0},
            recommendation="Set the pool's size to 6 per process (max_size=6 for psycopg_pool).",
        ),
        _f(
            "service_down",
            "uptime",
            Severity.critical,
            "service:search",
            target="web-1",
            title="search is down: no answer within 5 s",
        ),
        _f(
            "tls_expiring",
            "uptime",
            Severity.warning,
            "service:shop",
            target="web-1",
            title="The certificate of shop expires in 5.0 days",
        ),
    ]


RESOURCES_SUMMARY = {
    "host": {"hostname": "web-1", "cpu_count": 4, "cpu_percent": 37.5, "load": [1.5, 1.25, 1.0],
             "memory_total_bytes": 17179869184, "memory_available_bytes": 8589934592,
             "memory_used_percent": 50.0, "swap_used_bytes": 0, "net_bytes_sent": 1,
             "net_bytes_recv": 2, "uptime_s": 864000, "sample_s": 1.0},
    "disks": [{"mountpoint": "/", "total_bytes": 107374182400, "used_bytes": 53687091200,
               "used_share": 0.5, "bytes_per_hour": 1048576}],
    "processes": [{"name": "api-workers", "selector": "pattern gunicorn", "processes": 3,
                   "cpu_percent": 120.5, "rss_bytes": 314572800, "threads": 12,
                   "open_files": 30, "note": None}],
    "pools": [{"app": "shop", "name": "small <b>", "max_size": 2, "in_use": 2, "idle": 0,
               "waiting": 4, "processes": 1, "checkouts": 1200.0, "queued_share": 0.85,
               "mean_wait_ms": 120.5, "hold_ms": 50.0, "timeouts": 0.0, "load": 2.0}],
    "pgbouncer": [{"name": "edge/shop/app", "pool_size": 20, "clients_active": 20,
                   "clients_waiting": 3, "servers_active": 20, "servers_idle": 0,
                   "max_wait_s": 1.5, "xact_per_s": 400.0, "xact_ms": 45.5}],
    "services": [
        {"name": "shop", "kind": "http", "address": "https://shop/healthz", "up": True,
         "successes": 3, "attempts": 3, "latency_ms_median": 12.5, "latency_ms_max": 20.0,
         "status": 200, "error": None, "tls_days_left": 5.0},
        {"name": "search", "kind": "tcp", "address": "10.0.0.9:9200", "up": False,
         "successes": 0, "attempts": 3, "latency_ms_median": None, "latency_ms_max": None,
         "status": None, "error": "no answer within 5 s", "tls_days_left": None},
    ],
}  # fmt: skip

ACTIVITY = {
    "connections": {"total": 12, "usable": 57, "max_connections": 60,
                    "by_state": {"idle": 9, "active": 2, "idle in transaction": 1},
                    "by_user": {"shop": 12}, "by_application": {"billing": 8, "opscope": 1}},
    "wal_bytes_per_s": 52428.8,
    "checkpoints": {"timed": 40, "requested": 10, "requested_share": 0.2, "write_ms": 1200.0},
    "temp_files": 12,
    "temp_bytes": 104857600,
    "standbys": [{"name": "replica-1", "state": "streaming", "replay_lag_s": 0.5,
                  "replay_lag_bytes": 16384.0}],
    "slots": [{"name": "cdc", "type": "logical", "active": False, "retained_bytes": 2147483648.0}],
}  # fmt: skip


API_SUMMARY = {
    "source": "metrics",
    "metrics_url": "http://shop:8000/metrics",
    "window_s": None,
    "elapsed_s": 600.0,
    "requests": 3260,
    "endpoint_count": 4,
    "database": "shop",
    "endpoints": [
        {"route": "/customers/{customer_id}/orders", "requests": 1200, "rate_per_s": 2.0,
         "p50_ms": 310.5, "p95_ms": 700.0, "p99_ms": 950.25, "error_rate": 0.0,
         "db_share": 0.92, "queries_per_request": 1.0, "serialization_share": 0.01,
         "n_plus_one_requests": 0, "repeat_share": 0.94, "cache_hit_ratio": None},
        {"route": "/catalog", "requests": 800, "rate_per_s": 1.33, "p50_ms": 20.0,
         "p95_ms": 31.0, "p99_ms": 40.0, "error_rate": 0.0, "db_share": 0.1,
         "queries_per_request": 1.0, "serialization_share": 0.5, "n_plus_one_requests": 0,
         "repeat_share": 0.03, "cache_hit_ratio": 0.04},
        {"route": "/customers", "requests": 1230, "rate_per_s": 2.05, "p50_ms": 12.5,
         "p95_ms": 40.0, "p99_ms": 61.0, "error_rate": 0.0, "db_share": 0.6,
         "queries_per_request": 13.0, "serialization_share": 0.05, "n_plus_one_requests": 1230},
        {"route": "/checkout <b>", "requests": 30, "rate_per_s": 0.05, "p50_ms": 0.5,
         "p95_ms": 0.9, "p99_ms": 1.0, "error_rate": 1.0, "db_share": None,
         "queries_per_request": None, "serialization_share": None, "n_plus_one_requests": None},
    ],
}  # fmt: skip

PROBE_SUMMARY = {
    "model": "open",
    "rate_per_s": 50.0,
    "concurrency": 100,
    "method": "GET",
    "elapsed_s": 10.02,
    "requests": 500,
    "errors": 5,
    "error_rate": 0.01,
    "throughput_per_s": 49.9,
    "statuses": {"200": 495, "503": 5},
    "latency_ms": {"p50": 12.5, "p90": 80.0, "p95": 150.25, "p99": 410.0, "max": 512.0,
                   "mean": 30.1},
    "service_ms": {"p50": 11.0, "p90": 20.0, "p95": 25.0, "p99": 300.0, "max": 305.0,
                   "mean": 14.2},
    "late_starts": 42,
    "histogram": [[2.0, 8.0, 120], [8.0, 32.0, 300], [32.0, 128.0, 60], [128.0, 512.0, 20]],
}  # fmt: skip


def _pipeline(path: Path) -> None:
    """wide: four 700 s tasks that could run side by side, run one at a time (its
    max_active_tasks is 1), then a join that fails in one run of four."""
    start0 = WHEN.timestamp() - 4 * 86400
    tries: list[dict[str, object]] = []
    runs = []
    for i in range(4):
        start = start0 + i * 86400
        for k in range(4):
            tries.append(
                {
                    "dag_id": "wide",
                    "run_id": f"scheduled__{i}",
                    "task_id": f"part_{k}",
                    "state": "success",
                    "queued": start + k * 700 - 5,
                    "start": start + k * 700,
                    "end": start + (k + 1) * 700,
                }
            )
        failed = i == 2
        tries.append(
            {
                "dag_id": "wide",
                "run_id": f"scheduled__{i}",
                "task_id": "join<all>",
                "state": "failed" if failed else "success",
                "start": start + 2805,
                "end": start + 2860,
                "upstream": ["part_0", "part_1", "part_2", "part_3"],
            }
        )
        runs.append(
            {
                "dag_id": "wide",
                "run_id": f"scheduled__{i}",
                "start": start,
                "end": start + 2860,
                "state": "failed" if failed else "success",
            }
        )
    path.write_text(
        json.dumps(
            {"dags": [{"dag_id": "wide", "max_active_tasks": 1}], "runs": runs, "task_runs": tries}
        )
    )


def golden_report(tmp_path: Path) -> Report:
    """The fixed report: the health of one database, an explained statement, an advisor
    study, a server log, a pipeline history and a kind no section renders, with a cause
    shared by two checks."""
    log = tmp_path / "postgresql.log"
    log.write_text(LOG)
    cwd = Path.cwd()
    os.chdir(tmp_path)
    _pipeline(tmp_path / "pipeline.json")
    try:
        options = LogOptions(prefix="%m [%p] ", jobs=1)
        logs = analyze_logs(Config(), ["postgresql.log"], options, clock=lambda: WHEN)
        dags = analyze_dags(
            Config(), DagSource(IMPORT, "pipeline.json"), name="pipelines", clock=lambda: WHEN
        )
    finally:
        os.chdir(cwd)
    logs.summary["log"].update(elapsed_s=0.01, mb_per_s=0.1)
    dags.summary["pipelines"].update(read_s=0.01)
    report = Report(generated_at=WHEN, opscope_version="0.0.0-golden")
    report.targets = [
        Target(kind="postgresql", name="shop", server_version="15.20"),
        Target(kind="postgresql", name="shop-explain", server_version="15.20"),
        Target(kind="postgresql", name="shop-advisor", server_version="15.20"),
        *logs.targets,
        Target(kind="api", name="shop-api"),
        Target(kind="api-probe", name="http://shop:8000/health"),
        *dags.targets,
        Target(kind="resources", name="web-1"),
        Target(kind="custom", name="other"),
    ]
    report.summary = {
        "shop": {
            "server_version": "15.20",
            "database_bytes": 90177536,
            "cache_hit_ratio": 0.9989,
            "connections": 1,
            "max_connections": 60,
            "stats_reset": None,
            "stats_since": "2026-11-30T09:14:00+00:00",
            "extensions": {"pg_stat_statements": True, "hypopg": True, "pg_qualstats": False},
            "activity": ACTIVITY,
        },
        "shop-explain": {
            "plan": {
                "query": "SELECT * FROM shop.orders WHERE customer_id = 42",
                "values_from_log": "values from the slowest logged execution",
                "note": "not run: a generic plan",
                "tree": (
                    "Seq Scan on shop.orders  cost=0.00..6190.00 rows=15 width=12\n"
                    "   Filter: (customer_id = 42)\n"
                    "   !! plan_seq_scan: Sequential scan of shop.orders (300,000 rows)\n"
                ),
            }
        },
        "shop-advisor": {
            "advisor": {
                "statements_studied": 7,
                "candidates": 8,
                "candidates_costed": 8,
                "explains": 25,
                "verified": True,
                "partial": False,
                "notes": ["shop.orders_tmp is an INVALID index left by opscope"],
            }
        },
        **logs.summary,
        "shop-api": API_SUMMARY,
        "http://shop:8000/health": PROBE_SUMMARY,
        **dags.summary,
        "web-1": RESOURCES_SUMMARY,
        "other": {"answer": 42, "flag": True, "label": "a <b>label</b>"},
    }
    report.findings = [
        *_database_findings(),
        *_health_findings(),
        *logs.findings,
        *_api_findings(),
        *dags.findings,
        *_resource_findings(),
    ]
    report.fixes = group_fixes(report.findings, sql_changes)
    report.errors = [
        CheckError(check="slow_query", target="shop", message="pg_stat_statements is missing"),
        CheckError(check="plan_seq_scan", target="shop", message="pg_stat_statements is missing"),
        CheckError(check="table_bloat", target="shop", message="permission denied for pg_class"),
    ]
    return report


@pytest.mark.parametrize("fmt", list(SUFFIX))
def test_renderers_match_the_golden_files(fmt: str, tmp_path: Path) -> None:
    text = render(golden_report(tmp_path), fmt, width=100)
    golden = GOLDEN / f"report.{SUFFIX[fmt]}"
    if os.environ.get("OPSCOPE_REGENERATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert golden.exists(), f"{golden} is missing: regenerate (see this module's docstring)"
    assert text == golden.read_text(encoding="utf-8")

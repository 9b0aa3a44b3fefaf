"""Logs of managed services, built from a real server's own lines wrapped the way each
service wraps them (Cloud SQL and AlloyDB's Cloud Logging entries, Heroku's logplex drain,
CloudNativePG's JSON, Azure's diagnostic records) or written with its prefix (Amazon RDS and
Aurora): each is detected by itself and read with the same query and error counts as the
plain stderr log of the same statements."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from logs_fixtures import CUSTOM_PREFIX, LoggedWorkload, _logging_cluster, logged
from opscope.db.logs.analyze import analyze_logs
from opscope.db.logs.managed import detect_managed, iso_to_log
from opscope.db.settings import postgres_config

__all__ = ["logged"]  # the session fixture, shared with test_logs_cluster.py

CLOUDSQL_PREFIX = "%m [%p]: [%l-1] db=%d,user=%u "
RDS_PREFIX = "%t:%r:%u@%d:[%p]:"


@pytest.fixture(scope="module")
def cloudsql_logged() -> Iterator[LoggedWorkload]:
    yield from _logging_cluster(CLOUDSQL_PREFIX, {"log_min_duration_statement": "0"})


@pytest.fixture(scope="module")
def rds_logged() -> Iterator[LoggedWorkload]:
    yield from _logging_cluster(RDS_PREFIX, {"log_min_duration_statement": "0"})


def read(path: Path) -> dict[str, Any]:
    report = analyze_logs(postgres_config(), [str(path)])
    log: dict[str, Any] = report.summary["log"]
    calls = {s["fingerprint"]: s["calls"] for s in log["top_by_count"]}
    return {
        "format": log["files"][0]["format"],
        "queries": log["queries"],
        "calls": calls,
        "errors": log["errors"]["by_level"],
        "summary": log,
    }


def same_counts(wrapped: dict[str, Any], plain: dict[str, Any]) -> None:
    assert wrapped["queries"] == plain["queries"] > 0
    assert wrapped["calls"] == plain["calls"]
    assert wrapped["errors"] == plain["errors"]


def entries(path: Path) -> list[str]:
    """The server's stderr entries: a line and the tab-led lines continuing it."""
    out: list[str] = []
    for line in path.read_text().split("\n"):
        if line.startswith("\t") and out:
            out[-1] += "\n" + line
        elif line:
            out.append(line)
    return out


_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?) (\w+)")


def iso(entry: str) -> str:
    m = _STAMP.match(entry)
    assert m is not None, entry
    return f"{m.group(1)}T{m.group(2)}Z"


def test_cloud_sql_entries(cloudsql_logged: LoggedWorkload, tmp_path: Path) -> None:
    plain = cloudsql_logged.file("log")
    wrapped = tmp_path / "cloudsql.json"
    with wrapped.open("w") as out:
        for n, entry in enumerate(entries(plain)):
            out.write(
                json.dumps(
                    {
                        "insertId": f"s{n}",
                        "logName": "projects/p/logs/cloudsql.googleapis.com%2Fpostgres.log",
                        "resource": {
                            "type": "cloudsql_database",
                            "labels": {"database_id": "p:db1", "region": "europe-west1"},
                        },
                        "severity": "INFO",
                        "textPayload": entry,
                        "timestamp": iso(entry),
                        "receiveTimestamp": iso(entry),
                    }
                )
                + "\n"
            )
    got, want = read(wrapped), read(plain)
    assert got["format"] == "cloudsql"
    same_counts(got, want)


def test_alloydb_json_payload_entries(cloudsql_logged: LoggedWorkload, tmp_path: Path) -> None:
    plain = cloudsql_logged.file("log")
    wrapped = tmp_path / "alloydb.json"
    with wrapped.open("w") as out:
        for entry in entries(plain):
            out.write(
                json.dumps(
                    {
                        "logName": "projects/p/logs/alloydb.googleapis.com%2Fpostgres.log",
                        "resource": {"type": "alloydb.googleapis.com/Instance"},
                        "jsonPayload": {"message": entry},
                        "timestamp": iso(entry),
                    }
                )
                + "\n"
            )
    same_counts(read(wrapped), read(plain))


_CUSTOM = re.compile(
    r"^(?P<ts>\S+ \S+ \w+) \[(?P<pid>\d+)\] (?:(?P<user>\w*)@(?P<db>\w*) app=\S* qid=\S* )?"
    r"(?P<rest>[A-Z]+:  .*)$",
    re.DOTALL,
)


def test_heroku_logplex(logged: LoggedWorkload, tmp_path: Path) -> None:
    plain = logged.file("log")
    wrapped = tmp_path / "heroku.log"
    with wrapped.open("w") as out:
        out.write("2026-01-01T00:00:00+00:00 heroku[router]: at=info method=GET path=/\n")
        for seq, entry in enumerate(entries(plain), start=1):
            m = _CUSTOM.match(entry)
            assert m is not None, entry
            first, *more = m.group("rest").split("\n")
            stamp = iso(entry).replace("Z", "+00:00")
            keys = f'time_ms = "{m.group("ts")}" pid="{m.group("pid")}"'
            if m.group("db"):
                keys += f' database="{m.group("db")}" user="{m.group("user")}"'
            head = f"{stamp} app[postgres.{m.group('pid')}]: [DATABASE]"
            out.write(f"{head} [{seq}-1]  sql_error_code = 00000 {keys} {first}\n")
            for n, line in enumerate(more, start=2):
                out.write(f"{head} [{seq}-{n}] {line}\n")
            out.write(f"{stamp} app[web.1]: GET / 200\n")
    got, want = read(wrapped), read(plain)
    assert got["format"] == "heroku"
    same_counts(got, want)


def csv_records(path: Path) -> list[list[str]]:
    with path.open(newline="") as fh:
        return list(csv.reader(fh))


CSV_FIELDS = [
    "log_time",
    "user_name",
    "database_name",
    "process_id",
    "connection_from",
    "session_id",
    "session_line_num",
    "command_tag",
    "session_start_time",
    "virtual_transaction_id",
    "transaction_id",
    "error_severity",
    "sql_state_code",
    "message",
    "detail",
    "hint",
    "internal_query",
    "internal_query_pos",
    "context",
    "query",
    "query_pos",
    "location",
    "application_name",
    "backend_type",
    "leader_pid",
    "query_id",
]


def test_cloudnativepg_json(logged: LoggedWorkload, tmp_path: Path) -> None:
    wrapped = tmp_path / "cnpg.json"
    with wrapped.open("w") as out:
        out.write(
            json.dumps(
                {
                    "level": "info",
                    "ts": "2026-01-01T00:00:00.000000Z",
                    "logger": "instance-manager",
                    "msg": "Checking for free disk space for WALs before starting PostgreSQL",
                }
            )
            + "\n"
        )
        for row in csv_records(logged.file("csv")):
            record = dict(zip(CSV_FIELDS, row, strict=False))
            out.write(
                json.dumps(
                    {
                        "level": "info",
                        "ts": iso(record["log_time"]),
                        "logger": "postgres",
                        "msg": "record",
                        "logging_pod": "cluster-example-1",
                        "record": record,
                    }
                )
                + "\n"
            )
    got, want = read(wrapped), read(logged.file("log"))
    assert got["format"] == "cnpg"
    same_counts(got, want)


def test_azure_diagnostic_records(logged: LoggedWorkload, tmp_path: Path) -> None:
    wrapped = tmp_path / "PT1H.json"
    rows = [dict(zip(CSV_FIELDS, row, strict=False)) for row in csv_records(logged.file("csv"))]

    def record(r: dict[str, str]) -> dict[str, Any]:
        return {
            "time": iso(r["log_time"]),
            "resourceId": "/SUBSCRIPTIONS/S/RESOURCEGROUPS/RG/PROVIDERS/"
            "MICROSOFT.DBFORPOSTGRESQL/FLEXIBLESERVERS/PG1",
            "category": "PostgreSQLLogs",
            "operationName": "LogEvent",
            "properties": {
                "prefix": f"{r['log_time']}-{r['session_id']}-",
                "message": r["message"],
                "detail": r["detail"],
                "errorLevel": r["error_severity"],
                "domain": "postgres-15",
                "sqlerrcode": r["sql_state_code"],
                "processId": int(r["process_id"] or 0),
                "timestamp": r["log_time"],
                "databaseName": r["database_name"],
                "userName": r["user_name"],
            },
        }

    half = len(rows) // 2
    with wrapped.open("w") as out:
        # an event hub batches records; a storage account writes one a line
        out.write(json.dumps({"records": [record(r) for r in rows[:half]]}) + "\n")
        for r in rows[half:]:
            out.write(json.dumps(record(r)) + "\n")
    got, want = read(wrapped), read(logged.file("log"))
    assert got["format"] == "azure"
    assert got["queries"] == want["queries"] and got["calls"] == want["calls"]


def test_rds_and_aurora_stderr(rds_logged: LoggedWorkload) -> None:
    got = read(rds_logged.file("log"))
    assert got["summary"]["files"][0]["prefix"] == RDS_PREFIX
    same_counts(got, read(rds_logged.file("csv")))


def test_plain_logs_are_not_taken_for_a_service(logged: LoggedWorkload) -> None:
    for suffix in ("log", "csv", "json"):
        assert detect_managed(logged.file(suffix).read_bytes()[:65536]) is None
    assert CUSTOM_PREFIX.startswith("%m")


def test_timestamps_read_back() -> None:
    assert iso_to_log("2026-01-02T03:04:05.678901Z") == "2026-01-02 03:04:05.678 UTC"
    assert iso_to_log("2026-01-02T03:04:05+00:00") == "2026-01-02 03:04:05.000 UTC"
    assert iso_to_log("2026-01-02T03:04:05+01:00") == "2026-01-02 03:04:05.000 +01"
    assert iso_to_log("2026-01-02T03:04:05-05:30") == "2026-01-02 03:04:05.000 -0530"

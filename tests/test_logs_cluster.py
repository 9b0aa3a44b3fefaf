"""`opscope logs` on the real logs of a real cluster, in every format PostgreSQL writes.

The fixtures run a known workload; these tests check that what the analysis reports —
counts, durations, texts, parameters, errors, plans — is what was executed.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard

from logs_fixtures import (
    CUSTOM_PREFIX,
    LITERAL_RUNS,
    MULTILINE_SQL,
    PREPARED_RUNS,
    SECRETS,
    LoggedWorkload,
    logged,
    logged_secrets,
    logged_statements,
    logged_verbose,
    summary,
)
from opscope.config import Config
from opscope.db.logs.analyze import analyze_logs
from opscope.db.logs.options import LogOptions
from opscope.db.sandbox import ODD_PASSWORD, PASSWORD
from opscope.report import render

__all__ = [
    "logged",
    "logged_secrets",
    "logged_statements",
    "logged_verbose",
]  # fixtures, used by name

FORMATS = {"stderr": "log", "csvlog": "csv", "jsonlog": "json"}


def analyze(path: Path | str, **options: Any) -> dict[str, Any]:
    report = analyze_logs(Config(), [str(path)], LogOptions(database="work", **options))
    return summary(report)


def statement(log: dict[str, Any], needle: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [s for s in log["top_by_count"] if needle in s["query"]]
    assert len(found) == 1, [s["query"] for s in log["top_by_count"]]
    return found[0]


def check_workload(log: dict[str, Any], workload: LoggedWorkload) -> None:
    assert log["queries"] == len(workload.executed)
    assert log["bad_entries"]["count"] == 0, log["bad_entries"]
    assert (log["cut_entries"], log["cut_bytes"]) == (0, 0)  # nothing near the bound
    literal = statement(log, "abs(")
    assert literal["calls"] == LITERAL_RUNS
    assert literal["query"] == "SELECT abs($1) + $2"  # -k is one constant, as in PG
    prepared = statement(log, "doubled")
    assert prepared["calls"] == PREPARED_RUNS
    assert prepared["query"] == "select $1::int * $3 as doubled, $2::text as label"
    multiline = statement(log, "as a,")
    assert multiline["query"] == "select $1 as a,\n       $2 as b\n  where $3"
    slowest = log["slowest"][0]
    assert slowest["query"] == "select pg_sleep(1.1)"
    assert 1100 <= slowest["duration_ms"] <= workload.slow_ms
    assert "Result" in slowest["plan"]
    json_plan = next(e for e in log["slowest"] if e["query"] == "select pg_sleep(0.25)")
    assert '"Node Type": "Result"' in json_plan["plan"]
    assert log["auto_explain"] == {"plans": 2, "attached": 2}
    # The slowest execution of a statement keeps its literal text and bind parameters.
    example = prepared["example"]
    assert example["kind"] == "execute"
    assert re.fullmatch(r"\$1 = '\d', \$2 = 'it''s'", example["parameters"])
    assert multiline["example"]["query"] == MULTILINE_SQL
    errors = log["errors"]
    assert errors["total"] == workload.errors
    assert errors["by_sqlstate"] == {"22012": 1, "42601": 1}
    by_message = {e["message"]: e for e in errors["top_messages"]}
    assert by_message["division by zero"]["statement"] == "select 1/0"
    assert log["temp_files"]["count"] >= 1
    assert "order by g desc" in log["temp_files"]["top_statements"][0]["query"]
    locks = log["lock_waits"]
    assert locks["count"] >= 1 and locks["acquired"] == 1
    assert locks["top_statements"][0]["query"] == "insert into t values ($1)"
    assert sum(m["queries"] for m in log["per_minute"]) == log["queries"]


@pytest.mark.parametrize("log_format", sorted(FORMATS))
def test_each_format_reports_the_workload(logged: LoggedWorkload, log_format: str) -> None:
    log = analyze(logged.file(FORMATS[log_format]), prefix=CUSTOM_PREFIX)
    assert log["files"][0]["format"] == log_format
    check_workload(log, logged)
    if log_format == "stderr":
        # The query id comes from %Q in the prefix; csvlog and jsonlog carry it as a field.
        assert statement(log, "pg_sleep($1)")["query_ids"]


def test_formats_agree_on_every_duration(logged: LoggedWorkload) -> None:
    logs = [analyze(logged.file(s), prefix=CUSTOM_PREFIX) for s in FORMATS.values()]
    # %a prints "[unknown]" where csvlog and jsonlog leave the field empty: compare the rest.
    tops = [[{**s, "example": None} for s in log["top_by_total_time"]] for log in logs]
    assert tops[0] == tops[1] == tops[2]
    assert logs[0]["total_ms"] == logs[1]["total_ms"] == logs[2]["total_ms"]


def test_statement_then_duration_lines_are_paired(logged_statements: LoggedWorkload) -> None:
    """log_statement = all logs the text first; the duration line that follows has none."""
    for suffix in FORMATS.values():
        log = analyze(logged_statements.file(suffix))
        check_workload(log, logged_statements)
        assert log["logged_statements"] >= len(logged_statements.executed)
        assert not any(s["fingerprint"] == "unlogged" for s in log["top_by_count"])


def test_pgbadger_prefix_is_detected(logged_statements: LoggedWorkload) -> None:
    log = analyze(logged_statements.file("log"))
    assert log["files"][0]["prefix"] == "%t [%p]: user=%u,db=%d,app=%a,client=%h "


@pytest.mark.parametrize("compression", ["gz", "bz2", "xz", "zst"])
def test_compressed_logs(logged: LoggedWorkload, tmp_path: Path, compression: str) -> None:
    raw = logged.file("log").read_bytes()
    compressors: dict[str, Callable[[bytes], bytes]] = {
        "gz": gzip.compress,
        "bz2": bz2.compress,
        "xz": lzma.compress,
        "zst": zstandard.ZstdCompressor().compress,
    }
    packed = compressors[compression](raw)
    path = tmp_path / f"pg.log.{compression}"
    path.write_bytes(packed)
    log = analyze(path, prefix=CUSTOM_PREFIX)
    assert log["files"][0]["compression"] == {"gz": "gzip", "bz2": "bzip2"}.get(
        compression, {"xz": "xz", "zst": "zstd"}.get(compression)
    )
    check_workload(log, logged)


def test_truncated_gzip_is_reported_not_raised(logged: LoggedWorkload, tmp_path: Path) -> None:
    packed = gzip.compress(logged.file("log").read_bytes())
    path = tmp_path / "cut.log.gz"
    path.write_bytes(packed[: len(packed) // 2])
    report = analyze_logs(Config(), [str(path)], LogOptions(prefix=CUSTOM_PREFIX))
    assert report.errors and "ends early" in report.errors[0].message
    assert summary(report)["queries"] > 0


def to_syslog(stderr_log: str, prefix_re: str) -> str:
    """Rewrite stderr lines the way rsyslog stores PostgreSQL's syslog messages: a BSD
    header, `postgres[pid]: [seq-line]`, continuation lines numbered, tabs as #011.
    (No syslog daemon runs in the test environment, so the file is built from the real
    stderr log of the same cluster.)"""
    head = re.compile(prefix_re)
    out: list[str] = []
    seq = 0
    line_no = 1
    pid = "0"
    for line in stderr_log.split("\n"):
        if not line:
            continue
        m = head.match(line)
        if m is not None and not line.startswith("\t"):
            seq += 1
            line_no = 1
            pid = m.group("pid")
            rest = line[m.end() :]
        else:
            line_no += 1
            rest = line.replace("\t", "#011")
        out.append(f"Nov 28 20:15:55 dbhost postgres[{pid}]: [{seq}-{line_no}] {rest}")
    return "\n".join(out) + "\n"


def test_syslog(logged: LoggedWorkload, tmp_path: Path) -> None:
    text = logged.file("log").read_text()
    path = tmp_path / "postgresql.syslog"
    path.write_text(to_syslog(text, r"\S+ \S+ \S+ \[(?P<pid>\d+)\] "))
    log = analyze(path, prefix="%q%u@%d app=%a qid=%Q ")
    assert log["files"][0]["format"] == "syslog"
    check_workload(log, logged)


def test_parallel_run_equals_sequential(logged: LoggedWorkload) -> None:
    """Chunks far smaller than the file, over two worker processes: nothing lost or doubled."""
    path = logged.file("log")
    one = analyze(path, prefix=CUSTOM_PREFIX, jobs=1)
    two = analyze(path, prefix=CUSTOM_PREFIX, jobs=2, chunk_bytes=2048)
    for key in ("queries", "total_ms", "top_by_total_time", "slowest", "errors", "auto_explain",
                "temp_files", "lock_waits", "per_minute", "bad_entries"):  # fmt: skip
        assert one[key] == two[key], key


@pytest.mark.parametrize("log_format", sorted(FORMATS))
def test_verbose_messages_count_like_terse_ones(
    logged_verbose: LoggedWorkload, logged: LoggedWorkload, log_format: str
) -> None:
    """log_error_verbosity = verbose writes `LOG:  00000: duration: …` and a LOCATION line
    after every entry; the counts are those of the same workload logged tersely."""
    path = logged_verbose.file(FORMATS[log_format])
    if log_format == "stderr":
        assert "LOG:  00000: duration: " in path.read_text()
    log = analyze(path, prefix=CUSTOM_PREFIX)
    assert log["files"][0]["format"] == log_format
    check_workload(log, logged_verbose)
    terse = analyze(logged.file(FORMATS[log_format]), prefix=CUSTOM_PREFIX)
    for key in ("queries", "distinct_statements", "logged_statements", "auto_explain"):
        assert log[key] == terse[key], key
    assert log["errors"]["by_sqlstate"] == terse["errors"]["by_sqlstate"]


def test_documented_prefix_is_detected(logged: LoggedWorkload) -> None:
    """docs/logs.md recommends CUSTOM_PREFIX: found without --prefix, %d not swallowing
    `app=… qid=…`, so --db work keeps the workload."""
    log = analyze(logged.file("log"))
    assert log["files"][0]["prefix"] == CUSTOM_PREFIX
    check_workload(log, logged)


@pytest.mark.parametrize("log_format", sorted(FORMATS))
def test_no_password_reaches_any_output(
    logged_secrets: LoggedWorkload, log_format: str, tmp_path: Path
) -> None:
    """The server logs every password it was given verbatim (SECRETS: every quoting, no
    space or a comment before the literal, U&'' and continued literals, DO blocks, user
    mappings, dblink, subscriptions, a bound conninfo, errors quoting them); no output
    format of the library or of `opscope logs` shows any of them."""
    path = logged_secrets.file(FORMATS[log_format])
    raw = path.read_text()
    secrets = (*SECRETS, PASSWORD, ODD_PASSWORD)
    assert all(secret[:8] in raw for secret in secrets)
    report = analyze_logs(Config(), [str(path)], LogOptions(prefix=CUSTOM_PREFIX, slow_ms=0.0))
    log = summary(report)
    assert log["queries"] >= len(SECRETS) and log["errors"]["total"] == logged_secrets.errors == 2
    outputs = {fmt: render(report, fmt) for fmt in ("json", "terminal", "markdown", "html")}
    # the command, as a user runs it: the terminal report, and a file in each format (run
    # side by side: each start of Python costs a second)
    runs = {}
    for fmt in ("terminal", "json", "markdown", "html"):
        target = tmp_path / f"report.{fmt}"
        runs[fmt] = (target, subprocess.Popen(
            [sys.executable, "-m", "opscope", "logs", str(path), "--prefix", CUSTOM_PREFIX,
             "--slow", "0", "-f", fmt, *(["-o", str(target)] if fmt != "terminal" else [])],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "COLUMNS": "300"},
        ))  # fmt: skip
    for fmt, (target, run) in runs.items():
        printed, _ = run.communicate(timeout=120)
        assert run.returncode == 0, printed
        written = target.read_text() if fmt != "terminal" else ""
        outputs[f"opscope logs -f {fmt}"] = printed + written
    assert "bob" in outputs["opscope logs -f terminal"], "the statements are in the report"
    for name, out in outputs.items():
        leaked = [secret for secret in secrets if secret[:8] in out]
        assert not leaked, (name, leaked)

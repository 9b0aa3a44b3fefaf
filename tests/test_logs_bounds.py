"""Bounded memory on pathological logs: a line, entry or record longer than
max_entry_bytes is cut (stderr) or left out (csvlog, jsonlog) and counted, wherever the
chunks fall; the reader never holds more than its bound while it looks for an entry
boundary; a worker process that dies ends the command in one line.

Memory itself is measured in benchmarks/logs_memory.py, not here."""

# ruff: noqa: E501 - log lines are long

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opscope.config import Config
from opscope.db.logs import sessions
from opscope.db.logs.analyze import analyze_logs, parse_chunk
from opscope.db.logs.normalize import regex_normalize
from opscope.db.logs.options import LogOptions
from opscope.db.logs.parse_syslog import syslog_to_stderr
from opscope.db.logs.prefix import compile_prefix
from opscope.db.logs.reader import (
    ENTRY_UNITS,
    Cuts,
    InputStats,
    Splitter,
    chunks,
    csv_splitter,
    json_splitter,
    stderr_splitter,
)
from opscope.db.logs.sessions import Merger

LIMIT = 4096
PREFIX = "%m [%p] %q%u@%d "
HEAD = "2024-05-01 10:00:00.000 UTC [5] u@d "
OK = HEAD + "LOG:  duration: 1.000 ms  statement: select 1\n"
LONG = HEAD + "LOG:  duration: 2.000 ms  statement: select '" + "x" * (3 * LIMIT) + "'"
CSV_OK = (
    '2024-05-01 10:00:00.000 UTC,"u","d",5,"h",1.2,1,"SELECT",2024-05-01 10:00:00 UTC,'
    '3/0,0,LOG,00000,"duration: 1.000 ms  statement: select 1",,,,,,,,,"app","client backend",,0\n'
)
JSON_OK = '{"timestamp":"2024-05-01 10:00:00.000 UTC","user":"u","dbname":"d","pid":5,"error_severity":"LOG","message":"duration: 1.000 ms  statement: select 1"}\n'


def blocks(data: bytes, size: int = 1000) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


def read(
    data: bytes, split: Splitter, chunk_bytes: int, limit: int = LIMIT
) -> tuple[list[bytes], Cuts]:
    cuts = Cuts()
    return list(chunks(blocks(data), split, chunk_bytes, limit, cuts)), cuts


def run(tmp_path: Path, text: str, **options: Any) -> dict[str, Any]:
    path = tmp_path / "pg.log"
    path.write_text(text)
    report = analyze_logs(Config(), [str(path)], LogOptions(max_entry_bytes=LIMIT, **options))
    log: dict[str, Any] = report.summary["log"]
    log["errors"] = [e.message for e in report.errors]
    return log


def every_split(tmp_path: Path, text: str, **options: Any) -> dict[str, Any]:
    """The summary of `text`, the same whether a long unit is cut by the reader (small
    chunks: it is at the end of the buffer) or by the parser (one chunk)."""
    keys = ("queries", "entries", "cut_entries", "cut_bytes", "bad_entries", "errors")
    whole = run(tmp_path, text, chunk_bytes=1 << 20, **options)
    for chunk_bytes in (1, 700, 5000):
        part = run(tmp_path, text, chunk_bytes=chunk_bytes, **options)
        assert {k: part[k] for k in keys} == {k: whole[k] for k in keys}, chunk_bytes
    return whole


def test_a_long_stderr_line_keeps_its_start_and_is_counted(tmp_path: Path) -> None:
    text = OK * 3 + LONG + "\n" + OK * 3
    pieces, cuts = read(text.encode(), stderr_splitter(compile_prefix(PREFIX)), 1)
    assert (cuts.entries, cuts.bytes) == (1, len(LONG) - LIMIT)
    assert b"".join(pieces).decode() == OK * 3 + LONG[:LIMIT] + "\n" + OK * 3
    log = every_split(tmp_path, text, prefix=PREFIX)
    assert log["queries"] == 7 and log["bad_entries"]["count"] == 0
    assert (log["cut_entries"], log["cut_bytes"]) == (1, len(LONG) - LIMIT)
    slowest = log["slowest"][0]
    assert slowest["duration_ms"] == 2.0 and len(slowest["query"]) == LIMIT - len(HEAD) - 37
    assert log["errors"] == [
        f"1 log entry over --max-entry-bytes (4,096 bytes) cut: {len(LONG) - LIMIT:,} bytes "
        "left out (stderr entries keep their first 4,096 bytes, csvlog/jsonlog records are "
        "left out whole); a larger --max-entry-bytes keeps more"
    ]


def test_continuation_lines_count_in_their_entry(tmp_path: Path) -> None:
    entry = HEAD + "LOG:  duration: 3.000 ms  statement: select 1\n" + "\t, 2\n" * (2 * LIMIT // 5)
    log = every_split(tmp_path, OK + entry + OK + entry.rstrip("\n"), prefix=PREFIX)
    assert log["queries"] == 4 and log["cut_entries"] == 2
    assert log["cut_bytes"] == 2 * (len(entry) - 1 - LIMIT)


def test_the_reader_never_waits_for_an_entry_boundary_past_the_bound() -> None:
    """NUL bytes without a line end: one unit, cut at the bound; what follows it is
    skipped as it streams by, never held."""
    size = 20 << 20
    pieces: list[int] = []
    cuts = Cuts()
    nul = (b"\0" * (1 << 20) for _ in range(20))
    for piece in chunks(nul, stderr_splitter(compile_prefix(PREFIX)), 8 << 20, 1 << 20, cuts):
        pieces.append(len(piece))
    assert pieces == [(1 << 20) + 1]  # the unit kept, and the line end that closes it
    assert (cuts.entries, cuts.bytes) == (1, size - (1 << 20))


def test_only_continuation_lines(tmp_path: Path) -> None:
    line = "\tcontinuation line without any entry\n"
    text = line * (3 * LIMIT // len(line))
    log = every_split(tmp_path, text, prefix=PREFIX)
    kept = text[:LIMIT]
    assert log["queries"] == 0 and log["cut_entries"] == 1
    assert log["cut_bytes"] == len(text) - 1 - LIMIT
    assert log["bad_entries"]["count"] == kept.count("\n") + 1


def test_short_lines_without_a_prefix_are_bad_lines_not_cuts(tmp_path: Path) -> None:
    text = "no prefix here\n" * 2000 + OK
    log = every_split(tmp_path, text, prefix=PREFIX)
    assert log["bad_entries"]["count"] == 2000 and log["queries"] == 1
    assert log["cut_entries"] == 0 and log["errors"] == []
    pieces, _ = read(text.encode(), stderr_splitter(compile_prefix(PREFIX)), 1000)
    assert max(map(len, pieces)) <= 1000 + 1000


def test_detail_lines_without_an_entry_do_not_grow_a_chunk() -> None:
    detail = (HEAD + "DETAIL:  parameters: $1 = 'a'\n").encode()
    data = detail * 5000
    pieces, cuts = read(data, stderr_splitter(compile_prefix(PREFIX)), 1000)
    assert b"".join(pieces) == data and cuts.entries == 0
    assert max(map(len, pieces)) <= 1000 + ENTRY_UNITS * (LIMIT + 1) + 1000


def test_csvlog_record_over_the_bound_is_left_out(tmp_path: Path) -> None:
    # a quoted field with line ends in it, closed far past the bound: the records after it
    # are found again by counting quotes through what is skipped
    big = CSV_OK.replace("select 1", "select '" + "x, y\n" * LIMIT + "'").rstrip("\n")
    text = CSV_OK * 2 + big + "\n" + CSV_OK * 2
    log = every_split(tmp_path, text, log_format="csvlog")
    assert log["queries"] == 4 and log["bad_entries"]["count"] == 0
    assert (log["cut_entries"], log["cut_bytes"]) == (1, len(big))
    pieces, cuts = read(text.encode(), csv_splitter, 1)
    assert b"".join(pieces).decode() == CSV_OK * 4 and cuts.bytes == len(big)


def test_csvlog_quote_open_to_the_end(tmp_path: Path) -> None:
    rest = CSV_OK.split("select 1")[0] + "select '" + "x, y\n" * LIMIT
    log = every_split(tmp_path, CSV_OK * 3 + rest, log_format="csvlog")
    assert log["queries"] == 3 and log["bad_entries"]["count"] == 0
    assert (log["cut_entries"], log["cut_bytes"]) == (1, len(rest) - 1)


def test_jsonlog_line_over_the_bound_is_left_out(tmp_path: Path) -> None:
    big = JSON_OK.replace("select 1", "select " + "y" * 3 * LIMIT).rstrip("\n")
    log = every_split(tmp_path, JSON_OK + big + "\n" + JSON_OK, log_format="jsonlog")
    assert log["queries"] == 2 and log["bad_entries"]["count"] == 0
    assert (log["cut_entries"], log["cut_bytes"]) == (1, len(big))
    pieces, cuts = read((JSON_OK + big).encode(), json_splitter, 1)
    assert b"".join(pieces).decode() == JSON_OK and cuts.bytes == len(big)


def test_syslog_line_over_the_bound_is_cut(tmp_path: Path) -> None:
    line = "May  1 10:00:00 host postgres[5]: [1-1] user=u,db=d LOG:  duration: 1.000 ms  statement: select 1\n"
    big = line.replace("[1-1]", "[2-1]").replace("select 1", "select " + "z" * 3 * LIMIT)
    # while it converts syslog lines, before any chunk is cut
    stats = InputStats("-")
    out = b"".join(
        syslog_to_stderr(blocks((line + big + line).encode()), "user=%u,db=%d ", stats,
                         max_entry_bytes=LIMIT)
    )  # fmt: skip
    assert (stats.cuts.entries, stats.cuts.bytes) == (1, len(big) - 1 - LIMIT)
    assert out.count(b"LOG:  duration") == 3 and b"z" * 3000 in out
    # or, when the whole line came in one block, once converted
    log = run(tmp_path, line + big + line, chunk_bytes=1000)
    assert log["files"][0]["format"] == "syslog" and log["queries"] == 3
    assert log["cut_entries"] == 1


def test_a_normal_log_is_not_cut(tmp_path: Path) -> None:
    multiline = HEAD + "LOG:  duration: 1.500 ms  statement: select 1,\n\t2\n"
    log = every_split(tmp_path, (OK + multiline) * 500, prefix=PREFIX)
    assert log["queries"] == 1000 and log["bad_entries"]["count"] == 0
    assert (log["cut_entries"], log["cut_bytes"]) == (0, 0) and log["errors"] == []
    assert log["max_entry_bytes"] == LIMIT


def test_what_sessions_leave_pending_across_chunks_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """log_statement = all with many sessions: each statement waits for its duration line
    in the carry from chunk to chunk; past the budget the oldest sessions' are dropped."""
    monkeypatch.setattr(sessions, "MAX_CARRIED_TEXT", 2000)
    monkeypatch.setattr(sessions, "CARRIED_ENTRIES", 0)
    options = LogOptions(prefix=PREFIX, max_entry_bytes=LIMIT)
    merger = Merger(options)
    sql = "select " + "1" * 300
    for pid in range(20):
        text = f"2024-05-01 10:00:00.000 UTC [{pid}] u@d LOG:  statement: {sql}\n"
        merger.add(parse_chunk("stderr", PREFIX, text.encode(), options))
        assert sum(p.size() for p in merger.carry.values()) <= 2000
    assert sorted(merger.carry) == [str(pid) for pid in range(14, 20)]
    for pid in (0, 19):
        text = f"2024-05-01 10:00:01.000 UTC [{pid}] u@d LOG:  duration: 1.000 ms\n"
        merger.add(parse_chunk("stderr", PREFIX, text.encode(), options))
    groups = {s.query: s.calls for s in merger.finish().statements.values()}
    assert groups == {"(duration logged without its statement)": 1, "select $1": 1}


def test_more_literals_than_a_million_are_numbered() -> None:
    # a statement cut at the old 64 MB bound held millions of literals: the counter ran out
    assert regex_normalize("x " + "1 " * 1_000_001).endswith("$1000001 ")


def opscope_logs(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "opscope", "logs", *args],
        capture_output=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_pathological_files_give_a_report(tmp_path: Path) -> None:
    mib = 1 << 20
    shapes = {
        "nul.log": (b"\0" * 3 * mib, 0, 3 * mib - mib),
        "statement.log": (
            (OK * 10).encode()
            + HEAD.encode()
            + b"LOG:  duration: 2.000 ms  statement: insert into t values "
            + b"(1, 'abc'), " * (3 * mib // 12)
            + b"\n"
            + (OK * 10).encode(),
            21,
            None,
        ),
    }
    for name, (data, queries, cut_bytes) in shapes.items():
        path = tmp_path / name
        path.write_bytes(data)
        done = opscope_logs(str(path), "--format", "json", "--jobs", "2")
        assert done.returncode == 0, done.stderr
        log = json.loads(done.stdout)["summary"]["log"]
        assert log["queries"] == queries and log["cut_entries"] == 1
        longest = max(data.split(b"\n"), key=len)
        assert log["cut_bytes"] == (cut_bytes if cut_bytes is not None else len(longest) - mib)
    done = opscope_logs(str(tmp_path / "statement.log"))
    assert done.returncode == 0, done.stderr
    assert (
        b"1 entry longer than 1,048,576 bytes cut, 2.0 MB left out (--max-entry-bytes)"
        in done.stdout
    )


def test_max_entry_bytes_option(tmp_path: Path) -> None:
    path = tmp_path / "pg.log"
    path.write_text(OK + LONG + "\n")
    done = opscope_logs(str(path), "--max-entry-bytes", "4k", "--format", "json")
    assert done.returncode == 0, done.stderr
    log = json.loads(done.stdout)["summary"]["log"]
    assert (log["max_entry_bytes"], log["cut_entries"]) == (4096, 1)
    for bad in ("100", "lots", "4 TB", "2G"):
        done = opscope_logs(str(path), "--max-entry-bytes", bad)
        assert done.returncode == 2 and b"Traceback" not in done.stderr
        assert done.stderr.decode().count("\n") == 1
        assert done.stderr.startswith(b"opscope: error: --max-entry-bytes: ")


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def test_a_worker_that_dies_ends_in_one_line(tmp_path: Path) -> None:
    """A worker killed (as the out-of-memory killer would) while the command reads stdin:
    the workers are the grandchildren of the command (children of the forkserver)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "opscope", "logs", "-", "--jobs", "2", "--prefix", PREFIX,
         "--format", "json"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None
    block = OK.encode() * ((1 << 20) // len(OK))
    worker = None
    deadline = time.monotonic() + 120
    try:
        # The pool starts with the first full chunk (8 MB); the command then waits for
        # more input, so the worker is there to be killed.
        while worker is None:
            assert time.monotonic() < deadline and proc.poll() is None
            proc.stdin.write(block)
            proc.stdin.flush()
            workers = [w for child in _children(proc.pid) for w in _children(child)]
            worker = workers[0] if workers else None
        os.kill(worker, signal.SIGKILL)
        while Path(f"/proc/{worker}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        # More chunks after the death: their submission finds the pool broken.
        for _ in range(24):
            proc.stdin.write(block)
        proc.stdin.close()
    except BrokenPipeError:
        pass  # the command stopped reading: it noticed already
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    lines = err.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        "opscope: error: a worker process died reading stdin (killed by SIGKILL"
    )
    assert "--jobs 1" in lines[0] and out == b""


@pytest.mark.parametrize("jobs", [1, 2])
def test_jobs_agree_on_cuts(tmp_path: Path, jobs: int) -> None:
    text = (OK * 50 + LONG + "\n") * 20
    log = run(tmp_path, text, prefix=PREFIX, jobs=jobs, chunk_bytes=3000)
    assert log["queries"] == 50 * 20 + 20
    assert (log["cut_entries"], log["cut_bytes"]) == (20, 20 * (len(LONG) - LIMIT))

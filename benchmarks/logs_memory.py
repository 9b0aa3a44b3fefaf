"""Peak memory of `opscope logs` on pathological logs: bounded whatever their size or shape.

Each shape is written at every size of --sizes (MB, default 10, 100 and 300, so that
flatness shows), parsed by `opscope logs FILE --format json` with --jobs 1 and --jobs 2,
and, when `pgbadger` is on the PATH (benchmarks/logs_vs_pgbadger.py installs it), by
pgBadger -j 1 at the smallest size:

    nul        NUL bytes, no line end at all
    one-line   one line of 'a', no line end
    tabs       continuation lines (a tab first) and no entry at all
    short      short lines without any prefix
    csv-quote  csvlog whose record after the first 100 opens a quote that never closes
    json-line  jsonlog: 100 records, then one line of the whole size
    statement  100 entries, a valid prefix with one statement of the whole size, 100 more
    normal     a normal stderr log of the same size: the baseline

Peak memory is the high-water mark of resident memory (VmHWM) of the main process and of
its largest worker, read from /proc while they run (the main process's also from wait4),
and the largest sum of all its processes' resident memory ("total", sampled every 20 ms).
The last lines compare, for each size, the largest total on a pathological input with the
total on the normal log of the same size, the ratio last.

Measured on the 2-core development machine (Debian 12, Python 3.11, pgBadger 12.0) with
the defaults (--sizes 10,100,300; --max-entry-bytes 1M, 8 MB chunks); MB of memory:

    shape      file MB   -j 1 main   -j 2 main / worker / total   cut   bad lines
    nul         10/300     67/69        67/69 / 36/37 / 117/116     1           1
    one-line    10/300     67/69        67/69 / 32/37 / 114/117     1           1
    tabs        10/300     67/69        67/69 / 37/36 / 117/118     1      29,128
    short       10/300    93/109      80/141 / 50/63 / 185/280     0  20,000,000 (300 MB)
    csv-quote   10/300     67/69        67/69 / 33/33 / 112/112     1           0
    json-line   10/300     67/69        67/69 / 34/33 / 113/112     1           0
    statement   10/300     95/94        67/69 / 66/66 / 147/154     1           0
    normal      10/300    92/117      80/145 / 57/68 / 193/301     0           0
    largest pathological peak at 300 MB / at 100 MB: 1.03
    peak memory, pathological / normal log of 10 MB: 185/193 MB, ratio 0.96
    peak memory, pathological / normal log of 100 MB: 273/290 MB, ratio 0.94
    peak memory, pathological / normal log of 300 MB: 280/301 MB, ratio 0.93

Again on 2026-12-01, after the parse was made faster (mypyc, a fast entry scan, the
collector paused inside each chunk) and the CLI stopped importing the service's libraries
at start-up, with --no-pgbadger (load average about 2):

    shape      file MB   -j 1 main   -j 2 main / worker / total   cut   bad lines
    nul         10/300     76/79        76/79 / 39/37 / 131/137     1           1
    one-line    10/300     76/79        76/79 / 38/39 / 130/139     1           1
    tabs        10/300     76/79        76/79 / 43/41 / 135/141     1      29,128
    short       10/300   111/127      90/155 / 70/77 / 216/328     0  20,000,000 (300 MB)
    csv-quote   10/300     76/79        76/79 / 38/38 / 126/134     1           0
    json-line   10/300     76/78        76/79 / 38/37 / 126/126     1           0
    statement   10/300   104/103        76/79 / 70/70 / 158/168     1           0
    normal      10/300   105/130      90/163 / 65/73 / 217/335     0           0
    peak memory, pathological / normal log of 300 MB: 328/335 MB, ratio 0.98

Flat as before from 100 to 300 MB; 10 to 15 MB more per process than the first
measurement, a difference not traced yet.

Every pathological shape but `short` takes the same memory at 10 and 300 MB: what is over
the bound is skipped as it streams by. `short` (every line a bad line) fills chunks like a
normal log and takes what one takes; both grow from 10 to 100 MB only because a 10 MB
file does not fill the two chunks per worker that the main process reads ahead.

Before the bound, on the same shapes (run capped at 4 GB of address space so as not to
take the machine down): 1 MB of NULs peaked at 390 MB, 10 MB at 3.4 GB, 50 MB ran out of
memory (MemoryError; uncapped, 100 MB met the kernel's OOM killer at 12 GB and --jobs 2
ended in a BrokenProcessPool traceback); the cause was the regular expressions' backtracking
state (330 bytes per character of a line the generic prefix could not read) and a reader
that held up to 64 MB waiting for an entry boundary. A line of 100 MB of `a` ran out of
memory the same way; 50 MB of continuation lines took 300 MB, an unterminated csvlog quote
350 MB, a 100 MB jsonlog line 270 MB, and a 200 MB statement 1.6 GB before normalization
crashed with StopIteration (its counter stopped at a million literals).

pgBadger (one process, at 10 MB) takes 30-56 MB on these shapes, but 344 MB on the
unterminated csvlog quote, growing with the file (92 MB at 2 MB, 186 MB at 5 MB).

Run: `python benchmarks/logs_memory.py [--sizes 10,100,300] [--no-pgbadger]`: about 4 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

PREFIX = "%m [%p] %q%u@%d "
HEAD = "2024-05-01 10:00:{:02d}.{:03d} UTC [{}] app@shop "
MB = 1_000_000
PIECE = 1 << 20
CSV_OK = (
    '2024-05-01 10:00:00.000 UTC,"u","d",5,"h",1.2,1,"SELECT",2024-05-01 10:00:00 UTC,'
    '3/0,0,LOG,00000,"duration: 1.000 ms  statement: select 1",,,,,,,,,"app","client backend",,0\n'
)
JSON_OK = (
    '{"timestamp":"2024-05-01 10:00:00.000 UTC","user":"u","dbname":"d","pid":5,'
    '"error_severity":"LOG","message":"duration: 1.000 ms  statement: select 1"}\n'
)
OK = HEAD.format(0, 0, 5) + "LOG:  duration: 1.000 ms  statement: select 1\n"


def _repeat(unit: bytes, size: int) -> Iterator[bytes]:
    """`unit` repeated to `size` bytes, a megabyte at a time."""
    piece = unit * max(1, PIECE // len(unit))
    written = 0
    while written < size:
        part = piece[: size - written]
        written += len(part)
        yield part


def _normal(size: int) -> Iterator[bytes]:
    """A stderr log as log_min_duration_statement = 0 writes it: statements with literals,
    prepared statements with their parameters, multi-line statements, errors."""
    rng = random.Random(1)
    written = n = 0
    while written < size:
        lines = []
        for _ in range(2000):
            n += 1
            head = HEAD.format(n // 1000 % 60, n % 1000, 100 + n % 40)
            log = f"{head}LOG:  duration: {rng.random() * 20:.3f} ms  "
            kind = n % 10
            if kind < 6:
                key = rng.randint(1, 10**6)
                sql = f"select * from orders where id = {key} and state = 'new'"  # noqa: S608
                lines.append(log + "statement: " + sql)
            elif kind < 8:
                sql = "select sku, qty from items where sku = $1 and qty > $2"
                lines.append(log + f"execute S_{kind}: " + sql)
                lines.append(f"{head}DETAIL:  parameters: $1 = 'sku-{n}', $2 = '{n % 7}'")
            elif kind == 8:
                sql = f"update stock\n\t   set qty = qty - {n % 5}\n\t where sku = '{n}'"  # noqa: S608
                lines.append(log + "statement: " + sql)
            else:
                error = 'duplicate key value violates unique constraint "orders_pkey"'
                lines.append(f"{head}ERROR:  {error}")
                lines.append(f"{head}STATEMENT:  insert into orders values ({n})")  # noqa: S608
        data = ("\n".join(lines) + "\n").encode()
        written += len(data)
        yield data


def _framed(head: bytes, body: Iterator[bytes], tail: bytes = b"") -> Iterator[bytes]:
    yield head
    yield from body
    yield tail


def _csv_quote(size: int) -> Iterator[bytes]:
    """100 records, then one whose quote opens and never closes."""
    opened = CSV_OK.split("select 1")[0] + "select '"
    return _framed((CSV_OK * 100 + opened).encode(), _repeat(b"x, y\n", size))


def _json_line(size: int) -> Iterator[bytes]:
    return _framed(JSON_OK.encode() * 100, _repeat(b"y", size), b"'\"}\n")


def _statement(size: int) -> Iterator[bytes]:
    head = OK.replace("1.000", "2.000").replace("select 1\n", "insert into t values ")
    return _framed(
        (OK * 100 + head).encode(),
        _repeat(b"(1, 'abc'), ", size),
        b"(2, 'x')\n" + OK.encode() * 100,
    )


SHAPES: dict[str, tuple[str, Callable[[int], Iterator[bytes]]]] = {
    "nul": ("stderr", lambda size: _repeat(b"\0", size)),
    "one-line": ("stderr", lambda size: _repeat(b"a", size)),
    "tabs": ("stderr", lambda size: _repeat(b"\tcontinuation line, select 1 from t\n", size)),
    "short": ("stderr", lambda size: _repeat(b"no prefix here\n", size)),
    "csv-quote": ("csvlog", _csv_quote),
    "json-line": ("jsonlog", _json_line),
    "statement": ("stderr", _statement),
    "normal": ("stderr", _normal),
}


@dataclass
class Run:
    seconds: float
    #: high-water marks of the main process and of its largest child process
    main_mb: int
    worker_mb: int
    #: the largest sum of the resident memory of all its processes, sampled every 20 ms
    total_mb: int
    cut: int | None = None
    bad: int | None = None
    status: int = 0


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


def _memory_kb(pid: int) -> tuple[int, int]:
    """(VmHWM, VmRSS) of a process: its peak and current resident memory."""
    found = {"VmHWM:": 0, "VmRSS:": 0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line[:6] in found:
                found[line[:6]] = int(line.split()[1])
    except OSError:
        pass
    return found["VmHWM:"], found["VmRSS:"]


def measure(argv: list[str], timeout: float) -> Run:
    """Wall time and peak memory of the process and of its largest descendant."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peaks: dict[int, int] = {}
    total = 0
    status = None
    while status is None:
        tree, i = [proc.pid], 0
        while i < len(tree):
            tree += _children(tree[i])
            i += 1
        now = 0
        for pid in tree:
            hwm, rss = _memory_kb(pid)
            peaks[pid] = max(peaks.get(pid, 0), hwm)
            now += rss
        total = max(total, now)
        waited, code, usage = os.wait4(proc.pid, os.WNOHANG)
        if waited:
            status = os.waitstatus_to_exitcode(code)
            peaks[proc.pid] = max(peaks.get(proc.pid, 0), usage.ru_maxrss)
        elif time.perf_counter() - started > timeout:
            proc.kill()
            os.wait4(proc.pid, 0)
            status = -1
        else:
            time.sleep(0.02)
    proc.returncode = status  # reaped above: keep Popen from waiting again
    main = peaks.pop(proc.pid, 0)
    worker = max(peaks.values(), default=0)
    seconds = time.perf_counter() - started
    return Run(seconds, main // 1024, worker // 1024, max(total, main) // 1024, status=status)


def run_opscope(path: Path, log_format: str, jobs: int, out: Path) -> Run:
    argv = [sys.executable, "-m", "opscope", "logs", str(path), "--log-format", log_format,
            "--jobs", str(jobs), "--format", "json", "--output", str(out)]  # fmt: skip
    if log_format == "stderr":
        argv += ["--prefix", PREFIX]
    result = measure(argv, timeout=600)
    if result.status != 0:
        raise SystemExit(f"opscope failed on {path.name} (--jobs {jobs}): exit {result.status}")
    log = json.loads(out.read_text())["summary"]["log"]
    result.cut, result.bad = log["cut_entries"], log["bad_entries"]["count"]
    return result


def run_pgbadger(pgbadger: str, path: Path, log_format: str, out: Path) -> Run:
    fmt = {"stderr": "stderr", "csvlog": "csv", "jsonlog": "jsonlog"}[log_format]
    argv = [pgbadger, "-q", "-j", "1", "-f", fmt, "-o", str(out), str(path)]
    if log_format == "stderr":
        argv[6:6] = ["--prefix", PREFIX]
    return measure(argv, timeout=300)


def _row(name: str, size: int, tool: str, r: Run) -> str:
    worker = f"{r.worker_mb}" if r.worker_mb else "-"
    cut = "-" if r.cut is None else f"{r.cut:,}"
    bad = "-" if r.bad is None else f"{r.bad:,}"
    note = "" if r.status == 0 else f"  (exit {r.status})"
    return (
        f"{name:<10} {size:>4} {tool:<13} {r.main_mb:>7} {worker:>9} {r.total_mb:>8} "
        f"{cut:>4} {bad:>10} {r.seconds:>7.1f}{note}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,100,300", help="file sizes in MB, comma-separated")
    parser.add_argument(
        "--pgbadger-sizes",
        default=None,
        help="sizes pgBadger is run at (default: the smallest; its memory grows with some "
        "shapes: on an unterminated csvlog quote about 37 times the file size)",
    )
    parser.add_argument("--no-pgbadger", action="store_true", help="leave pgBadger out")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    pgbadger = None if args.no_pgbadger else shutil.which("pgbadger")
    if pgbadger is None and not args.no_pgbadger:
        print("pgbadger is not installed (benchmarks/logs_vs_pgbadger.py installs it): left out")
    badger_sizes = (
        {int(s) for s in args.pgbadger_sizes.split(",")} if args.pgbadger_sizes else {min(sizes)}
    )
    rows: list[tuple[str, int, str, Run]] = []
    print(
        f"{'shape':<10} {'MB':>4} {'tool':<13} {'main MB':>7} {'worker MB':>9} {'total MB':>8} "
        f"{'cut':>4} {'bad lines':>10} {'seconds':>7}"
    )
    with tempfile.TemporaryDirectory(prefix="opscope-memory-") as tmp:
        workdir = Path(tmp)
        out = workdir / "report.json"
        for name, (log_format, generate) in SHAPES.items():
            for size in sizes:
                path = workdir / f"{name}-{size}.log"
                with path.open("wb") as fh:
                    for part in generate(size * MB):
                        fh.write(part)
                runs = [(f"opscope -j {j}", run_opscope(path, log_format, j, out)) for j in (1, 2)]
                if pgbadger and size in badger_sizes:
                    runs.append(("pgbadger -j 1", run_pgbadger(pgbadger, path, log_format, out)))
                for tool, r in runs:
                    rows.append((name, size, tool, r))
                    print(_row(name, size, tool, r), flush=True)
                path.unlink()
    worst: dict[int, tuple[int, str]] = {}
    for size in sizes:
        ops = [(f"{n}, {t}", n, r) for n, s, t, r in rows if s == size and t.startswith("opscope")]
        normal = max(r.total_mb for _, n, r in ops if n == "normal")
        label, _, peak = max(((w, n, r) for w, n, r in ops if n != "normal"),
                             key=lambda x: x[2].total_mb)  # fmt: skip
        worst[size] = (peak.total_mb, label)
        print(
            f"{size} MB: largest peak on a pathological log {peak.total_mb} MB ({label}), "
            f"on the normal log {normal} MB"
        )
    if len(sizes) > 1:
        # the two largest sizes: by then every worker has its chunks in flight
        below, top = sorted(sizes)[-2:]
        print(
            f"largest pathological peak at {top} MB / at {below} MB: "
            f"{worst[top][0] / worst[below][0]:.2f}"
        )
    for size in sizes:
        normal = max(r.total_mb for n, s, t, r in rows
                     if s == size and n == "normal" and t.startswith("opscope"))  # fmt: skip
        print(
            f"peak memory, pathological / normal log of {size} MB: "
            f"{worst[size][0]}/{normal} MB, ratio {worst[size][0] / normal:.2f}"
        )


if __name__ == "__main__":
    main()

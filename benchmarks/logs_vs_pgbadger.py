"""Slow-query log parsing: opscope vs pgBadger on the same real PostgreSQL log.

What it does, in one run:

1. installs pgBadger with apt-get if it is missing (Debian package `pgbadger`);
2. starts a throwaway PostgreSQL cluster logging every statement
   (log_min_duration_statement = 0, pgBadger's recommended log_line_prefix) and runs a real
   pgbench workload against it, in the simple and the prepared protocol (so the log has
   `statement:` entries and `execute` entries with their `DETAIL: parameters:` lines), plus
   a few failing statements;
3. builds a log of at least --mb megabytes (default 200) by concatenating copies of that
   real log, each copy moved one day later (only the dates are rewritten, so every entry
   is a real entry and time keeps increasing) — running pgbench long enough to write
   200 MB directly takes too long on a small machine;
4. runs opscope with --jobs 1 pinned to one CPU (--repeat times, default 3: best and
   median), once more there with OPSCOPE_PURE_PYTHON=1 (the modules scripts/setup
   compiles, run as Python), on every core, and pgBadger single-process with JSON output
   pinned to the same CPU, on the same file; checks that all count the same number of
   queries; prints each run's MB/s (wall clock, and CPU time for the one-core runs: it is
   what other load on a shared machine changes least), peak memory, and opscope's peak
   memory on half the file to show it stays flat as the file grows; opscope's CPU time
   in its parts (start, parse, report: the parse is what grows with the log); the
   one-core ratio is printed last.

Measured on the 2-core development machine (Debian 12, Python 3.11, pgBadger 12.0), with
the defaults (--mb 200 --seconds 20: a 154 MB pgbench log, grown to 309 MB):

    opscope --jobs 1: 7.3 s, 42.4 MB/s, peak 94 MB (half the file: 94 MB), 912,258 queries
    opscope --jobs 2: 4.2 s, 73.9 MB/s, peak 131 MB in the main process, 912,258 queries
    pgbadger -j 1: 83.2 s, 3.7 MB/s, peak 30 MB, 912,258 queries
    same number of queries: 912,258
    log parsing: opscope 73.9 MB/s, pgbadger 3.7 MB/s, ratio 19.9x (one core: 11.4x)

A later run after the final parser fix (a 129 MB pgbench log grown to 258 MB):

    opscope --jobs 1: 6.9 s, 37.5 MB/s, peak 99 MB (half the file: 92 MB), 835,580 queries
    opscope --jobs 2: 3.8 s, 68.3 MB/s, peak 127 MB in the main process, 835,580 queries
    pgbadger -j 1: 73.2 s, 3.5 MB/s, peak 30 MB, 835,580 queries
    log parsing: opscope 68.3 MB/s, pgbadger 3.5 MB/s, ratio 19.4x (one core: 10.6x)

After the review fixes (strict format and duration parsing, redaction, bounded caches), on a
166 MB pgbench log grown to 333 MB:

    opscope --jobs 1: 8.4 s, 39.7 MB/s, peak 92 MB (half the file: 92 MB), 978,898 queries
    opscope --jobs 2: 4.9 s, 67.7 MB/s, peak 127 MB in the main process, 978,898 queries
    pgbadger -j 1: 87.2 s, 3.8 MB/s, peak 30 MB, 978,898 queries
    log parsing: opscope 67.7 MB/s, pgbadger 3.8 MB/s, ratio 17.7x (one core: 10.4x)

Profiling `--jobs 1` (py-spy) showed where the time went: PostgreSQL's normalizer
(pglast) for every text new to the exact-text cache — half the statements of a pgbench
log, 253,000 calls per 100 MB, a third of the parse — then the entry pattern and the
per-line Python. A shape cache (texts that differ only in literal digits, trusted once
their digits are shown to be literal values) took the parser calls to 483; compiling the
stderr parser, normalization, sessions and aggregation with mypyc (scripts/setup, into the
venv) took the per-line Python down. On a 256 MB log grown from a 64 MB pgbench log,
runs interleaved on one pinned CPU while other helpers loaded the 2-core machine (load
average 2.5-4.5), CPU time of the whole process (start, parse, report), best of 3:

    before (4c22911):                  28.6 MB/s (median 28.3)
    shape cache, pure Python:          31.4 MB/s (median 30.9)
    shape cache + mypyc (setup):       37.9 MB/s (median 37.8)

(parse alone on 100 MB: 30.9 -> 36-40 pure Python -> 44-47 MB/s compiled; about 1 s of
each run is loading every area's plugins for the report, the same before and after.)
This benchmark in the same conditions (a 76 MB pgbench log grown to 228 MB):

    opscope --jobs 1 (compiled, CPU 1): best 7.4 s, 30.6 MB/s, median 22.5 MB/s of 3,
        CPU time 5.9 s (38.5 MB/s), peak 111 MB (half the file: 111 MB), 745,593 queries
    opscope --jobs 1 (pure Python, CPU 1): 10.1 s, 22.5 MB/s, CPU time 7.2 s (31.6 MB/s)
    opscope --jobs 2: 11.1 s, 20.5 MB/s, peak 142 MB in the main process
    pgbadger -j 1 (CPU 1): 107.7 s, 2.1 MB/s, CPU time 70.6 s (3.2 MB/s), peak 29 MB
    same number of queries: 745,593
    log parsing, 2 cores: opscope 20.5 MB/s, pgbadger 2.1 MB/s (one core), ratio 9.7x
    log parsing, one core: opscope 30.6 MB/s (median 22.5), pgbadger 2.1 MB/s, ratio
        14.5x (median 10.6x; in CPU time 11.9x, pure Python 9.8x)

So about 12x pgBadger on one core in CPU time (9x before), not the 20x aimed at; wall
clock ratios under that load range from 10x to 15x. The two cores were busy with other
work, which is why --jobs 2 was no faster than one pinned process in that run.

Then the per-line loop (callgrind on a 10 MB chunk, compiled: 2,077M -> 1,148M
instructions in parse_stderr): `in` on bytes in the shape test formatted a TypeError per
statement (9%); the fields unpacked from the match were `str | Any`, which mypyc compiles
as plain objects (every string method a lookup by name); `None in fields` compared eleven
fields per line; the cyclic GC walked the live aggregate inside each chunk; the entry
pattern, led by `(?m)^` and empty groups, was tried at every character instead of after
each newline; the lazy name loops (`user=%u,db=`) were a third of each match (now read up
to their delimiter, and times and pids in ASCII digits, where that gives the same match,
the lazy pattern reading the lines that leaves out); group(*indices) cost twice groups();
the duration was tested with isdecimal and parsed with float() of a slice. The same
summary (digest of the whole report) on the benchmark log before and after, and
hypothesis tests hold each fast path equal to the plain one. Parse alone on a 100 MB log,
CPU time pinned to one core, best of 3: 2.01 s (49.7 MB/s, load average 3.2) -> 1.14 s
(88.1 MB/s, load average 1.8). This benchmark then (load average 2.0-2.5, a 79 MB
pgbench log grown to 236 MB):

    opscope --jobs 1 (compiled, CPU 1): best 4.7 s, 50.6 MB/s, median 48.5 MB/s of 3,
        CPU time 4.6 s (51.7 MB/s), peak 112 MB (half the file: 112 MB), 790,953 queries
        its CPU time in parts: start 0.26 s, parse 2.95 s, report 0.96 s; parse alone,
        best: 2.95 s (79.8 MB/s)
    opscope --jobs 1 (pure Python, CPU 1): 7.2 s, 32.9 MB/s, CPU time 7.0 s (33.4 MB/s;
        parse 5.27 s, 44.7 MB/s)
    opscope --jobs 2: 5.7 s, 41.3 MB/s, peak 137 MB in the main process
    pgbadger -j 1 (CPU 1): 78.3 s, 3.0 MB/s, CPU time 75.8 s (3.1 MB/s), peak 30 MB
    same number of queries: 790,953
    log parsing, 2 cores: opscope 41.3 MB/s, pgbadger 3.0 MB/s (one core), ratio 13.7x
    log parsing, one core: opscope 50.6 MB/s (median 48.5), pgbadger 3.0 MB/s, ratio
        16.8x (median 16.1x; in CPU time 16.6x, pure Python 10.8x; parse alone against
        all of pgbadger's CPU time 25.7x)

So the parse itself is about 26x pgBadger on one core, and the whole run 17x: of its
4.6 s of CPU time, 1.0 s is the report's loading of every area's plugins and 0.7 s the
interpreter's start, imports and exit, the same for any size of log (without the plugin
loading the run would be about 21x). Another helper shared the second core, which is
why --jobs 2 gained less than a second core gives.

Then three lookups per entry that compiled code did by name: the builtin `next` (in
builtins, per entry: now a local), the normalization cache (in the module's globals, and
again inside normalize() on each miss: now normalize() alone, its caches Final), and the
set of secondary levels for DETAIL lines (now a comparison first); the two common duration
forms are told apart by one character before `find`. Callgrind on a 20 MB pgbench log,
compiled: 2,088M -> 1,998M instructions in parse_stderr (-4.3%); CPU time of
aggregate_logs on a 92 MB pgbench log, one core, best of 3 (load average 1.0): 1.227 s
(75.4 MB/s) -> 1.141 s (81.1 MB/s); the same report (digest of the whole JSON) compiled
and pure before and after.

With all of this round merged (the parse work above; the CLI's plugins no longer import
SQLAlchemy, alembic, FastAPI, httpx, Jinja2 or numpy at start; opscope's bytecode compiled
by scripts/setup, as pip does for an installed package, where this environment's
PYTHONDONTWRITEBYTECODE had every run compile ~300 modules), two runs in a row at load
average 1.1 to 1.8, defaults (logs of 328 and 307 MB grown from 164 and 154 MB):

    opscope --jobs 1 (compiled, CPU 1): best 4.2 s, 78.9 MB/s, median 78.5 MB/s of 3,
        CPU time 4.1 s (79.2 MB/s), peak 103 MB (half the file: 99 MB), 946,378 queries
        its CPU time in parts: start 0.21 s, parse 3.58 s, report 0.24 s (91.5 MB/s)
    opscope --jobs 1 (pure Python, CPU 1): 7.3 s, 44.8 MB/s
    opscope --jobs 2: 3.2 s, 101.2 MB/s, peak 141 MB in the main process
    pgbadger -j 1 (CPU 1): 92.2 s, 3.6 MB/s, CPU time 90.9 s (3.6 MB/s), peak 30 MB
    same number of queries: 946,378
    log parsing, 2 cores: ratio 28.5x
    log parsing, one core: opscope 78.9 MB/s (median 78.5), pgbadger 3.6 MB/s, ratio
        22.2x (median 22.1x; in CPU time 22.0x, pure Python 12.5x)
    second run: one core 21.2x (median 20.7x; CPU time 21.1x), 2 cores 28.3x, 897,042
        queries in both tools, peak 99 MB on the whole file and on half of it

Before the last parse commits, with the suite or another helper on the second core (load
1.6 to 2.5), three runs gave 21.4x, 19.3x and 20.6x on one core (CPU time 20.4x, 19.9x
and 20.1x): the ratio moves by about a tenth with the load and the pgbench log drawn.

Peak memory is that of the main process (VmHWM); with --jobs 2 each worker holds one chunk
and its partial aggregate on top. On logs of longer, literal-heavy statements (every text
new to the normalization cache) opscope's single-core speed is lower, about 25 MB/s, and
pgBadger's about 2.4 MB/s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from opscope.db.sandbox import Sandbox

PREFIX = "%t [%p]: user=%u,db=%d,app=%a,client=%h "
_DATE = re.compile(rb"^(\d{4}-\d\d-\d\d)", re.M)

# What `opscope logs` does (analyze_logs), in its three parts, each timed in CPU time of
# this process: start (imports), parse (reading and aggregating the log: the part this
# benchmark compares; with --jobs > 1 most of it is in the workers, so it is not split
# then) and report (the checks of every area's plugins, and the report's figures).
OPSCOPE_RUN = """
import time
started = time.process_time()
import json, sys
from opscope.db.logs import compiled
from opscope.db.logs.analyze import aggregate_logs, build_report
from opscope.db.logs.options import LogOptions
from opscope.findings import utc_now
from opscope.fixes import group_fixes
imported = time.process_time()
options = LogOptions(prefix=sys.argv[2], jobs=int(sys.argv[3]))
parts = aggregate_logs([sys.argv[1]], options)
parsed = time.process_time()
report = build_report(*parts)
report.generated_at = utc_now()
report.fixes = group_fixes(report.findings)
done = time.process_time()
print(json.dumps({"queries": report.summary["log"]["queries"], "compiled": compiled.active(),
                  "start_s": imported - started, "parse_s": parsed - imported,
                  "report_s": done - parsed}))
"""


def ensure_pgbadger() -> str:
    found = shutil.which("pgbadger")
    if found:
        return found
    print("installing pgbadger with apt-get ...", file=sys.stderr)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True)
    subprocess.run(
        [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "pgbadger"],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    found = shutil.which("pgbadger")
    if not found:
        raise SystemExit("pgbadger is not installed and apt-get could not install it")
    return found


def record_workload(seconds: float) -> bytes:
    """A real server log of a pgbench run, in both protocols, with a few errors."""
    box = Sandbox.create(
        settings={
            "logging_collector": "on",
            "log_directory": "'log'",
            "log_filename": "'seed.log'",
            "log_line_prefix": f"'{PREFIX}'",
            "log_min_duration_statement": "0",
            "lc_messages": "'C'",
        }
    )
    try:
        box.start()
        pgbench = str(box.bindir / "pgbench")
        base = [pgbench, "-h", str(box.root), "-p", str(box.port), "-U", "postgres"]
        box.psql("CREATE DATABASE bench")
        box._run([*base, "-i", "-q", "-s", "2", "bench"])
        for mode, share in (("simple", 0.6), ("prepared", 0.4)):
            box._run([*base, "-n", "-c", "4", "-j", "2", "-M", mode,
                      "-T", str(max(1, round(seconds * share))), "bench"])  # fmt: skip
        for bad in ("select 1/0", "select * from no_such_table"):
            box._run([str(box.bindir / "psql"), "-h", str(box.root), "-p", str(box.port),
                      "-U", "postgres", "-d", "bench", "-c", bad], check=False)  # fmt: skip
        box.stop(remove=False)
        return (box.datadir / "log" / "seed.log").read_bytes()
    finally:
        box.stop()


def grow(seed: bytes, target_bytes: int, path: Path) -> None:
    """Copies of the seed, each moved one more day later, until the file is big enough."""
    copy = 0
    with path.open("wb") as out:
        if len(seed) >= target_bytes:
            # Cut at a line that starts an entry, so the file holds whole entries only.
            cut = seed.rfind(b"\n2", 0, target_bytes)
            out.write(seed[: cut + 1])
            return
        while out.tell() < target_bytes:
            shift = timedelta(days=copy)

            def later(m: re.Match[bytes], shift: timedelta = shift) -> bytes:
                return (date.fromisoformat(m.group(1).decode()) + shift).isoformat().encode()

            out.write(_DATE.sub(later, seed) if copy else seed)
            copy += 1


def _high_water_mb(pid: int) -> int:
    """Peak resident memory of a running process (VmHWM: counted from its exec, so none of
    this benchmark's own memory is included)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def timed(argv: list[str], cpu: int | None = None) -> tuple[float, float, int, str]:
    """Wall time, CPU time (user + system, the process and its children), peak memory
    (MB) of the main process, and stdout; on CPU `cpu` only when given (the one-core
    runs: other processes on the machine then cost the same to both tools). The CPU time
    is what other load on a shared machine changes least."""
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        pin = None if cpu is None else lambda: os.sched_setaffinity(0, {cpu})
        proc = subprocess.Popen(argv, stdout=out, preexec_fn=pin)
        peak = 0
        while True:
            # VmHWM only grows: its last reading before exit is the peak.
            peak = max(peak, _high_water_mb(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        out.seek(0)
        text = out.read().decode()
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    if code != 0:
        raise SystemExit(f"{argv[0]} failed with exit code {code}")
    return elapsed, usage.ru_utime + usage.ru_stime, peak, text


def run_opscope(
    path: Path, jobs: int, cpu: int | None = None, pure: bool = False
) -> tuple[float, float, int, int, bool, dict[str, float]]:
    """Seconds, CPU seconds, peak MB, queries, whether the compiled modules ran, and the
    CPU seconds of the main process's parts (start_s, parse_s, report_s)."""
    argv = [sys.executable, "-c", OPSCOPE_RUN, str(path), PREFIX, str(jobs)]
    os.environ.pop("OPSCOPE_PURE_PYTHON", None)
    if pure:
        os.environ["OPSCOPE_PURE_PYTHON"] = "1"
    try:
        elapsed, cpu_s, peak, out = timed(argv, cpu)
    finally:
        os.environ.pop("OPSCOPE_PURE_PYTHON", None)
    data = json.loads(out)
    parts = {k: float(data[k]) for k in ("start_s", "parse_s", "report_s")}
    return elapsed, cpu_s, peak, int(data["queries"]), bool(data["compiled"]), parts


def run_pgbadger(
    pgbadger: str, path: Path, workdir: Path, cpu: int | None
) -> tuple[float, float, int, int]:
    output = workdir / "pgbadger.json"
    elapsed, cpu_s, peak, _ = timed(
        [pgbadger, "-q", "-j", "1", "-f", "stderr", "--prefix", PREFIX, "-o", str(output),
         str(path)], cpu
    )  # fmt: skip
    stats = json.loads(output.read_text())["overall_stat"]
    queries = sum(
        int(v.get("queries_number", 0))
        for v in stats.values()
        if isinstance(v, dict) and "queries_number" in v
    )
    return elapsed, cpu_s, peak, queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=200, help="size of the log to parse")
    parser.add_argument("--seconds", type=float, default=20, help="pgbench run time")
    parser.add_argument("--repeat", type=int, default=3, help="one-core opscope runs")
    args = parser.parse_args()
    pgbadger = ensure_pgbadger()
    with tempfile.TemporaryDirectory(prefix="opscope-bench-") as tmp:
        workdir = Path(tmp)
        seed = record_workload(args.seconds)
        seed_mb = len(seed) / 1e6
        log = workdir / "postgresql.log"
        half = workdir / "half.log"
        grow(seed, args.mb * 1_000_000, log)
        grow(seed, args.mb * 500_000, half)
        del seed
        size_mb = log.stat().st_size / 1e6
        cpus = sorted(os.sched_getaffinity(0))
        cores, cpu = len(cpus), cpus[-1]
        print(f"pgbench log: {seed_mb:.1f} MB")
        print(f"log: {size_mb:.1f} MB, half: {half.stat().st_size / 1e6:.1f} MB")

        # One core: every one-core run is pinned to the same CPU; repeated, as other
        # processes on the machine make single runs noisy (best and median are printed).
        runs = [run_opscope(log, 1, cpu) for _ in range(max(1, args.repeat))]
        times = sorted(r[0] for r in runs)
        one_s, _, one_peak, one_q, is_compiled, _ = min(runs)
        median_s = times[len(times) // 2]
        best_cpu = min(r[1] for r in runs)
        # the parts of the run with the least CPU time, and the least of each part
        best_parts = min(runs, key=lambda r: r[1])[5]
        parse_cpu = min(r[5]["parse_s"] for r in runs)
        _, _, half_peak, _, _, _ = run_opscope(half, 1, cpu)
        kind = "compiled" if is_compiled else "pure Python (no compiled build)"
        print(f"opscope --jobs 1 ({kind}, CPU {cpu}): best {one_s:.1f} s, {size_mb / one_s:.1f} "
              f"MB/s, median {size_mb / median_s:.1f} MB/s of {len(runs)}, CPU time "
              f"{best_cpu:.1f} s ({size_mb / best_cpu:.1f} MB/s), peak {one_peak} MB "
              f"(half the file: {half_peak} MB), {one_q:,} queries")  # fmt: skip
        print(f"    its CPU time in parts: start {best_parts['start_s']:.2f} s, parse "
              f"{best_parts['parse_s']:.2f} s, report {best_parts['report_s']:.2f} s; "
              f"parse alone, best: {parse_cpu:.2f} s ({size_mb / parse_cpu:.1f} MB/s)")  # fmt: skip
        pure_s, pure_cpu, _, pure_q, _, pure_parts = run_opscope(log, 1, cpu, pure=True)
        print(f"opscope --jobs 1 (pure Python, CPU {cpu}): {pure_s:.1f} s, "
              f"{size_mb / pure_s:.1f} MB/s, CPU time {pure_cpu:.1f} s "
              f"({size_mb / pure_cpu:.1f} MB/s; parse {pure_parts['parse_s']:.2f} s, "
              f"{size_mb / pure_parts['parse_s']:.1f} MB/s), {pure_q:,} queries")  # fmt: skip
        all_s, _, all_peak, all_q, _, _ = run_opscope(log, cores)
        print(f"opscope --jobs {cores}: {all_s:.1f} s, {size_mb / all_s:.1f} MB/s, "
              f"peak {all_peak} MB in the main process, {all_q:,} queries")  # fmt: skip
        bad_s, bad_cpu, bad_peak, bad_q = run_pgbadger(pgbadger, log, workdir, cpu)
        print(f"pgbadger -j 1 (CPU {cpu}): {bad_s:.1f} s, {size_mb / bad_s:.1f} MB/s, CPU time "
              f"{bad_cpu:.1f} s ({size_mb / bad_cpu:.1f} MB/s), peak {bad_peak} MB, "
              f"{bad_q:,} queries")  # fmt: skip
        if not one_q == pure_q == all_q == bad_q:
            raise SystemExit(
                f"query counts differ: opscope {one_q} / {pure_q} / {all_q}, pgbadger {bad_q}"
            )
        print(f"same number of queries: {bad_q:,}")
        print(
            f"log parsing, {cores} cores: opscope {size_mb / all_s:.1f} MB/s, pgbadger "
            f"{size_mb / bad_s:.1f} MB/s (one core), ratio {bad_s / all_s:.1f}x"
        )
        print(
            f"log parsing, one core: opscope {size_mb / one_s:.1f} MB/s (median "
            f"{size_mb / median_s:.1f}), pgbadger {size_mb / bad_s:.1f} MB/s, ratio "
            f"{bad_s / one_s:.1f}x (median {bad_s / median_s:.1f}x; in CPU time "
            f"{bad_cpu / best_cpu:.1f}x, pure Python {bad_cpu / pure_cpu:.1f}x; parse "
            f"alone against all of pgbadger's CPU time {bad_cpu / parse_cpu:.1f}x)"
        )


if __name__ == "__main__":
    main()

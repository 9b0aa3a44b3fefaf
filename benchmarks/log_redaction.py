"""What redaction costs `opscope logs`: the same logs analyzed with it and without it.

Log analysis redacts every error's message and statement as it reads them (and what it
shows at the end); a text that mentions nothing that can be a secret is let through after a
cheap check, one that does is parsed by PostgreSQL's parser. The run:

1. records a real pgbench log (logs_vs_pgbadger.record_workload: a throwaway cluster,
   log_min_duration_statement = 0, both protocols, a few errors) and grows it to --mb;
2. writes an error-heavy log of the same size: every statement is followed by an error and
   its STATEMENT (an upsert's unique violation, each with its own literals), the worst case
   for the cheap check since every error's texts are new;
3. analyzes each on one core, with redaction and with the redaction functions replaced by
   the identity (in a separate process), in turns, best of five; prints MB per second of
   CPU time (wall time on a shared machine swings by half between two identical runs),
   the ratio last.

Measured on the 2-core development machine (Python 3.11, shared with other work), MB per
second of CPU time:

    pgbench log, 124 MB, 6 errors: redaction on 37.8 MB/s, off 37.3 MB/s
    error-heavy log, 120 MB, 218,197 errors: redaction on 29.0 MB/s, off 32.0 MB/s
    redaction costs: -1.5% on the pgbench log, 10.2% on the error-heavy log

Against the regular expressions the parser-based redaction replaced (the same logs, one
core, best of three): a 115 MB pgbench log 40.6 -> 40.3 MB/s; a 141 MB log where every
other entry is a unique violation 32.9 -> 30.8 MB/s; a 105 MB one whose 250,000 failing
statements each hold an E'' string with a backslash 27.3 -> 23.8 MB/s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from logs_vs_pgbadger import PREFIX, grow, record_workload

RUN = """
import json, sys, time
if sys.argv[3] == "off":
    import opscope.redact as r
    r.redact = lambda text: text
    r.redact_message = lambda message, statement: message
    r.redact_parameters = lambda query, parameters: parameters
from opscope.config import Config
from opscope.db.logs.analyze import analyze_logs
from opscope.db.logs.options import LogOptions
started = time.process_time()
report = analyze_logs(Config(), [sys.argv[1]], LogOptions(prefix=sys.argv[2], jobs=1))
log = report.summary["log"]
print(json.dumps({"s": time.process_time() - started, "errors": log["errors"]["total"]}))
"""


def error_heavy(path: Path, target_bytes: int) -> None:
    head = "2024-05-01 10:{m:02d}:{s:02d} UTC [{pid}]: user=app,db=bench,app=psql,client=[local] "
    with path.open("w") as out:
        k = 0
        while out.tell() < target_bytes:
            h = head.format(m=(k // 60000) % 60, s=(k // 1000) % 60, pid=1000 + k % 7)
            statement = f"insert into t (id, v) values ({k}, 'value {k}')"  # noqa: S608 - logged
            out.write(
                f"{h}LOG:  duration: 0.{k % 900 + 100} ms  statement: select abs({k})\n"
                f'{h}ERROR:  duplicate key value violates unique constraint "t_pkey"\n'
                f"{h}DETAIL:  Key (id)=({k}) already exists.\n"
                f"{h}STATEMENT:  {statement} on conflict (v) do nothing\n"
            )
            k += 1


def timed(path: Path, redaction: str) -> tuple[float, int]:
    out = subprocess.run(
        [sys.executable, "-c", RUN, str(path), PREFIX, redaction],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    run = json.loads(out)
    return float(run["s"]), int(run["errors"])


def best(path: Path, runs: int = 5) -> tuple[float, float, int]:
    """Fastest run with and without redaction, taken in turns so that a busy moment of a
    shared machine weighs on both."""
    on, off = [], []
    for _ in range(runs):
        on.append(timed(path, "on"))
        off.append(timed(path, "off"))
    return min(s for s, _ in on), min(s for s, _ in off), on[0][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=120, help="size of each log")
    parser.add_argument("--seconds", type=float, default=8, help="pgbench run time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="opscope-bench-") as tmp:
        pgbench = Path(tmp) / "pgbench.log"
        grow(record_workload(args.seconds), args.mb * 1_000_000, pgbench)
        errors = Path(tmp) / "errors.log"
        error_heavy(errors, args.mb * 1_000_000)
        costs = []
        for name, path in (("pgbench log", pgbench), ("error-heavy log", errors)):
            mb = path.stat().st_size / 1e6
            on, off, count = best(path)
            print(
                f"{name}, {mb:.0f} MB, {count:,} errors: redaction on {mb / on:.1f} MB/s,"
                f" off {mb / off:.1f} MB/s"
            )
            costs.append(f"{(on / off - 1) * 100:.1f}% on the {name}")
        print("redaction costs: " + ", ".join(costs))


if __name__ == "__main__":
    main()

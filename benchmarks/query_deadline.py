"""Query deadline: what watching every wait for the server costs a query.

opscope's sessions run each wait for the server through `WatchedConnection.wait()`, with a
timeout (the query deadline). The peer is a plain psycopg connection to the same database over
the same loopback link; both run the same short query many times, so the ratio is the
per-query overhead of the deadline at its most visible (the shortest round trip there is).

Measured on the 2-core development machine (PostgreSQL 15 sandbox over loopback, 2026-12-01),
two runs:
    plain psycopg:    87.9 us per query    85.1 us per query
    opscope watched:  86.0 us per query    86.7 us per query
    ratio             0.98x                1.02x
The difference is within the noise of the machine: the deadline is a timeout handed to the
wait psycopg does anyway.
"""

from __future__ import annotations

import statistics
import time

import psycopg

from opscope.db.connection import connect
from opscope.db.sandbox import running_sandbox
from opscope.db.settings import SessionSettings

QUERIES = 5000
ROUNDS = 5


def _run(conn: psycopg.Connection[object]) -> float:
    start = time.perf_counter()
    for _ in range(QUERIES):
        conn.execute("SELECT 1").fetchone()
    return time.perf_counter() - start


def main() -> None:
    with running_sandbox() as box:
        plain = psycopg.connect(box.dsn(), autocommit=True)
        watched = connect(box.dsn(), SessionSettings())
        try:
            plain_s, watched_s = [], []
            for _ in range(ROUNDS):  # interleaved, so drift on a shared machine hits both
                plain_s.append(_run(plain))
                watched_s.append(_run(watched))
        finally:
            plain.close()
            watched.close()
    p, w = statistics.median(plain_s), statistics.median(watched_s)
    print(
        f"plain psycopg:    {p * 1e6 / QUERIES:.1f} us per query (median of {ROUNDS} x {QUERIES})"
    )
    print(f"opscope watched:  {w * 1e6 / QUERIES:.1f} us per query")
    print(f"ratio {w / p:.2f}x")


if __name__ == "__main__":
    main()

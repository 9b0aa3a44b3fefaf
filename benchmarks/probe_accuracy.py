"""Does `opscope probe --rate` report the latency users get? Against a local server whose delays
are known, the probe's percentiles are compared with the true ones, side by side with a
closed-loop measurement (what wrk and hey do: the next request leaves when the previous answer
came, latency from the send).

The server answers one request at a time (a single accept loop) and sleeps a known delay for
the i-th request it serves: `--fast-ms`, with a stall of `--stall-ms` every `--stall-every`
requests. Requests are due at `--rate` per second. The true latency of the i-th request is
when the server finished answering it minus when it was due: the server notes the moment it
closes each answer on the machine's monotonic clock, the one the probe's schedule is on (the
probe adds only reading the answer). As a check, the same follows from the known delays alone
(Lindley's recursion: a request starts when it is due or when the one before it ends).

    .venv/bin/python benchmarks/probe_accuracy.py [--rate 100] [--requests 1500]

Measured here (2 shared cores, Python 3.11), defaults: 1,500 requests at 100/s, 5 ms answers
with a 150 ms stall every 50th:
                true  opscope --rate   error   closed loop   error
    p50       40.5ms          41.8ms    3.1%         8.0ms   80.2%
    p90      132.7ms         133.6ms    0.7%        12.1ms   90.9%
    p95      144.6ms         145.1ms    0.3%        14.2ms   90.2%
    p99      152.8ms         154.0ms    0.8%       155.6ms    1.8%
    largest percentile error: opscope --rate 3.1%, closed loop 90.9%, ratio 28.9x
(From the delays alone, without the server's own cost per request, the true p50 would be
25 ms: the server's accept-and-close time matters at 90% load, which is why the truth is read
from the server.)
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from opscope.api.latency import quantile
from opscope.api.probe import ProbePlan, ProbeResult, run_probe

QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99))


def delays(n: int, fast_s: float, stall_s: float, every: int) -> list[float]:
    return [stall_s if i % every == every - 1 else fast_s for i in range(n)]


def serve(port: int, fast_s: float, stall_s: float, every: int, out: str) -> None:
    """One request at a time, `Connection: close`, the i-th served sleeping its delay; the
    moment each answer was closed is written to `out` when the server is stopped."""

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    closed: list[float] = []
    try:
        _accept_loop(port, fast_s, stall_s, every, closed)
    finally:
        Path(out).write_text("\n".join(repr(t) for t in closed))


def _accept_loop(port: int, fast_s: float, stall_s: float, every: int, closed: list[float]) -> None:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(1024)
    i = 0
    while True:
        conn, _ = server.accept()
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        delay = stall_s if i % every == every - 1 else fast_s
        i += 1
        time.sleep(delay)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        conn.close()
        if delay:
            closed.append(time.perf_counter())


def true_latencies(due: Sequence[float], service: Sequence[float]) -> list[float]:
    """Latency of each request at a single server, from when it was due."""
    out: list[float] = []
    free = 0.0
    for arrival, s in zip(due, service, strict=True):
        start = max(arrival, free)
        free = start + s
        out.append(free - arrival)
    return out


def percentiles(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {name: float(quantile(ordered, q) or 0.0) * 1000 for name, q in QUANTILES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--fast-ms", type=float, default=5.0)
    parser.add_argument("--stall-ms", type=float, default=150.0)
    parser.add_argument("--stall-every", type=int, default=50)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--closed-times", help=argparse.SUPPRESS)
    args = parser.parse_args()
    fast, stall = args.fast_ms / 1000, args.stall_ms / 1000
    if args.serve:
        serve(args.serve, fast, stall, args.stall_every, args.closed_times)
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    n = args.requests
    work = Path(tempfile.mkdtemp())
    base = f"http://127.0.0.1:{port}/"

    def run(plan: ProbePlan, name: str) -> tuple[ProbeResult, list[float]]:
        times = work / name
        argv = [sys.executable, __file__, "--serve", str(port), "--fast-ms", str(args.fast_ms),
                "--stall-ms", str(args.stall_ms), "--stall-every", str(args.stall_every),
                "--closed-times", str(times)]  # fmt: skip
        server = subprocess.Popen(argv)
        try:
            time.sleep(0.5)
            result = asyncio.run(run_probe(plan))
        finally:
            server.terminate()
            server.wait()
        return result, [float(t) for t in times.read_text().split()]

    opened, closed_at = run(ProbePlan(urls=(base,), rate=args.rate, requests=n), "open")
    closed, _ = run(ProbePlan(urls=(base,), concurrency=1, requests=n), "closed")
    due = [opened.started + i / args.rate for i in range(n)]
    truth = percentiles([end - start for start, end in zip(due, sorted(closed_at), strict=True)])
    known = percentiles(
        true_latencies([d - due[0] for d in due], delays(n, fast, stall, args.stall_every))
    )
    probe = percentiles([o.latency for o in opened.outcomes])
    loop = percentiles([o.latency for o in closed.outcomes])
    print(
        f"{n} requests at {args.rate:g}/s; answers of {args.fast_ms:g} ms, a {args.stall_ms:g} ms "
        f"stall every {args.stall_every}"
    )
    print(
        "true: when the server closed each answer minus when it was due; from the delays "
        "alone: " + ", ".join(f"{k} {v:.1f} ms" for k, v in known.items())
    )
    print(f"{'':6}{'true':>10}{'opscope --rate':>16}{'error':>8}{'closed loop':>14}{'error':>8}")
    worst_probe = worst_loop = 0.0
    for name, _ in QUANTILES:
        e_probe = abs(probe[name] - truth[name]) / truth[name]
        e_loop = abs(loop[name] - truth[name]) / truth[name]
        worst_probe, worst_loop = max(worst_probe, e_probe), max(worst_loop, e_loop)
        print(
            f"{name:6}{truth[name]:>8.1f}ms{probe[name]:>14.1f}ms{e_probe:>8.1%}"
            f"{loop[name]:>12.1f}ms{e_loop:>8.1%}"
        )
    errors = sum(1 for o in opened.outcomes if o.failed) + sum(
        1 for o in closed.outcomes if o.failed
    )
    print(f"failed requests: {errors}")
    print(
        f"largest percentile error: opscope --rate {worst_probe:.1%}, closed loop "
        f"{worst_loop:.1%}, ratio {worst_loop / worst_probe if worst_probe else float('inf'):.1f}x"
    )


if __name__ == "__main__":
    main()

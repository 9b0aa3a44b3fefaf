"""Real servers for the API tests: the shop apps of tests/api_apps under uvicorn or gunicorn,
as subprocesses on free ports, and the shop's tables on a test database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

APPS = Path(__file__).resolve().parent / "api_apps"

SHOP_TABLES = (
    "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL)",
    "INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 2000) g",
    # no index on customer_id: the slow endpoint's statement reads the whole table
    "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL, total numeric)",
    "INSERT INTO orders SELECT g, g % 2000 + 1, (g % 1000) / 10.0 "
    "FROM generate_series(1, 400000) g",
    "ANALYZE customers",
    "ANALYZE orders",
    # the load above is set-up, not the workload: the advisor must not weigh its writes
    "SELECT pg_stat_reset()",
    "SELECT pg_stat_statements_reset()",
)

#: route templates of the shop, as each framework writes them
FASTAPI_ROUTES = {
    "fast": "/health",
    "slow": "/customers/{customer_id}/orders",
    "n_plus_one": "/customers",
    "serialization": "/catalog",
    "failing": "/checkout",
}
FLASK_ROUTES = {**FASTAPI_ROUTES, "slow": "/customers/<int:customer_id>/orders"}
PATHS = {
    "fast": "/health",
    "slow": "/customers/7/orders",
    "n_plus_one": "/customers",
    "serialization": "/catalog",
    "failing": "/checkout",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(argv: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    """Run a server until the block ends; yields its base URL once /health answers."""
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=APPS)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server never answered:\n{log.read_text()}")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def server_env(dsn: str, multiproc_dir: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "SHOP_DSN": dsn, "PYTHONPATH": str(APPS)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if multiproc_dir is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc_dir)
    return env


def uvicorn(port: int, workers: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "shop_fastapi:app", "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(workers), "--log-level", "info",
    ]  # fmt: skip


GUNICORN_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(D)s'


def gunicorn(port: int, workers: int, access_log: Path) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}",
        "--access-logfile", str(access_log), "--access-logformat", GUNICORN_LOG_FORMAT,
        "shop_flask:app",
    ]  # fmt: skip


def opscope(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opscope", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "OPSCOPE_STATE_DIR": str(cwd)},
    )

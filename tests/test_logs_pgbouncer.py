"""PgBouncer's own log, from a real PgBouncer in front of the test cluster: client logins and
failures, connections to the server, pooler errors and the periodic stats lines, detected by
themselves."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conftest import SandboxDb
from opscope.db.sandbox import free_port


@pytest.fixture
def bouncer(db: SandboxDb) -> Iterator[tuple[int, Path]]:
    """PgBouncer on a free port with stats every second; (port, its log file). Its folder is
    outside pytest's, which the postgres account cannot enter."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).exists():
        pytest.skip("pgbouncer is not installed (scripts/setup installs it)")
    home = Path(tempfile.mkdtemp(prefix="opscope-pgbouncer-"))
    port = free_port()
    (home / "pgbouncer.ini").write_text(
        f"[databases]\napp = host=127.0.0.1 port={db.cluster.port} dbname={db.name}\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {home}/users.txt\nlogfile = {home}/pgbouncer.log\n"
        f"pidfile = {home}/pgbouncer.pid\nstats_period = 1\npool_mode = transaction\n"
    )
    (home / "users.txt").write_text('"postgres" ""\n')
    run_as: list[str] = []
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        entry = pwd.getpwnam("postgres")
        for path in (home, *home.iterdir()):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        run_as = ["-u", "postgres"]
    with subprocess.Popen(
        [binary, *run_as, str(home / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as proc:
        try:
            deadline = time.monotonic() + 20
            while "process up" not in _text(home / "pgbouncer.log"):
                assert time.monotonic() < deadline, "pgbouncer did not start"
                time.sleep(0.05)
            yield port, home / "pgbouncer.log"
        finally:
            proc.terminate()
            proc.wait(20)
            shutil.rmtree(home, ignore_errors=True)


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def logs(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opscope", "logs", str(path), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_connections_errors_and_stats(bouncer: tuple[int, Path]) -> None:
    port, log = bouncer
    for _ in range(3):
        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{port}/app", autocommit=True, prepare_threshold=None
        ) as conn:
            for _ in range(20):
                conn.execute("SELECT 1").fetchall()
    with pytest.raises(psycopg.OperationalError, match="no such database"):
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/nosuch")
    deadline = time.monotonic() + 20
    while _text(log).count("queries/s") < 3:  # stats lines after the work
        assert time.monotonic() < deadline, "no stats lines"
        time.sleep(0.1)
    proc = logs(log, "-f", "json")
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    log_summary = data["summary"]["log"]
    assert log_summary["files"][0]["format"] == "pgbouncer"
    pooler = log_summary["pgbouncer"]
    assert pooler["logins"] == 4 and pooler["logins_by_database"] == {"app": 3, "(nodb)": 1}
    assert pooler["login_failures"] == 1
    assert pooler["errors_by_message"] == {"no such database: nosuch": 1}
    assert pooler["abnormal_client_closes"] == 1  # the failed login; the others closed
    assert pooler["server_connections"] >= 1
    stats = pooler["stats"]
    assert stats["queries_per_s"]["samples"] >= 3
    assert stats["queries_per_s"]["max"] >= 1
    assert stats["bytes_in_per_s"]["max"] > 0 and "wait_us" in stats
    terminal = logs(log)
    assert terminal.returncode == 0 and "): 4 client logins (1 failed)" in terminal.stdout

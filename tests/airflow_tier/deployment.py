"""A real Airflow deployment for the integration tier: a metadata database in the test
cluster, migrated by Airflow itself, with the DAGs of dags/ run by a real scheduler on the
LocalExecutor (Airflow 3: with its api-server and dag-processor), then its API server for
the REST readers.

Generating the runs takes scheduler time, so the metadata is cached as a pg_dump under
~/.cache/opscope, keyed by the venv's spec and the DAG files: a warm run restores it in
seconds. Every process started here is stopped at the end, by its process id (and those of
its descendants), never by name."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from airflow_tier.expected import DAG_IDS
from airflow_tier.venvs import Spec, cache_dir, ensure_venv
from opscope.db.sandbox import Sandbox, free_port

HERE = Path(__file__).resolve().parent
DAGS = HERE / "dags"
#: bump when the way runs are generated changes, so cached metadata is made again
HARNESS = "1"
USER = "opscope"
PASSWORD = "opscope-test-pw"
#: how long the DAG runs may take on a loaded 2-core machine
RUNS_TIMEOUT_S = 300


class AirflowFailed(RuntimeError):
    pass


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (Airflow's task runners start process groups of their
    own, so killing the group of what we started is not enough)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


@dataclass
class Deployment:
    version: str
    spec: Spec
    cluster: Sandbox
    dbname: str
    home: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    #: seconds the runs took to generate, or None when the metadata came from the cache
    generated_s: float | None = None
    restored_s: float | None = None
    api_url: str | None = None
    api_port: int = 0
    #: the cached pg_dump of the metadata, once there is one
    dump: Path | None = None

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def dsn(self) -> str:
        return self.cluster.dsn(self.dbname)

    @property
    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV", "OPSCOPE"))
        }
        env.update(
            PATH=f"{self.spec.bin}:{env.get('PATH', '/usr/bin:/bin')}",
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=(
                f"postgresql+psycopg2://postgres@127.0.0.1:{self.cluster.port}/{self.dbname}"
            ),
            AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__LOAD_DEFAULT_CONNECTIONS="False",
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            # the machine has two cores, shared: a few task slots are plenty
            AIRFLOW__CORE__PARALLELISM="4",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="1",
            AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL="60",
            AIRFLOW__SCHEDULER__PARSING_PROCESSES="1",
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="60",
            AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES="1",
            AIRFLOW__CORE__INTERNAL_API_SECRET_KEY="opscope-tier-secret",
            AIRFLOW__WEBSERVER__SECRET_KEY="opscope-tier-secret",
            AIRFLOW__API__SECRET_KEY="opscope-tier-secret",
            AIRFLOW__API_AUTH__JWT_SECRET="opscope-tier-jwt-secret-0123456789abcdef",
            AIRFLOW__API__PORT=str(self.api_port),
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{self.api_port}/execution/",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{USER}:admin",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(self.home / "passwords.json"),
            AIRFLOW__API__AUTH_BACKENDS="airflow.api.auth.backend.basic_auth",
            AIRFLOW__WEBSERVER__WORKERS="1",
            AIRFLOW__WEBSERVER__WEB_SERVER_MASTER_TIMEOUT="300",
            AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING",
        )
        return env

    # --- processes ----------------------------------------------------------------------

    def airflow(self, *args: str, timeout: float = 300) -> str:
        proc = subprocess.run(
            [str(self.spec.bin / "airflow"), *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
            raise AirflowFailed(f"airflow {' '.join(args)} failed:\n" + "\n".join(tail))
        return proc.stdout

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = (self.home / f"{args[0]}.log").open("ab")
        proc = subprocess.Popen(
            [str(self.spec.bin / "airflow"), *args],
            env=self.env,
            cwd=self.home,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        """SIGTERM to every process started here and to its descendants, then SIGKILL to
        whatever is left after 30 s."""
        for proc in reversed(self.procs):
            if proc.poll() is not None:
                continue
            for pid in [proc.pid, *_descendants(proc.pid)]:
                _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                for pid in [proc.pid, *_descendants(proc.pid)]:
                    _signal(pid, signal.SIGKILL)
                proc.wait(timeout=10)
        for proc in self.procs:
            for pid in _descendants(proc.pid):  # orphans adopted by nobody else are gone
                _signal(pid, signal.SIGKILL)
        self.procs.clear()

    def logs(self) -> str:
        out = []
        for log in sorted(self.home.glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-20:]
            out.append(f"--- {log.name}\n" + "\n".join(lines))
        return "\n".join(out)

    # --- the runs -----------------------------------------------------------------------

    def _finished(self) -> tuple[int, int]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE state IN ('success', 'failed')) "
                "FROM dag_run"
            ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def generate(self) -> None:
        """Migrate, run every DAG once through the scheduler, and wait for the runs."""
        started = time.monotonic()
        self.airflow("db", "migrate")
        self.airflow("pools", "set", "opscope_narrow", "1", "one slot for opscope_narrow")
        if self.major == 2:
            self.airflow(
                "users",
                "create",
                "--username",
                USER,
                "--password",
                PASSWORD,
                "--role",
                "Admin",
                "--email",
                "opscope@example.invalid",
                "--firstname",
                "op",
                "--lastname",
                "scope",
            )
        self.airflow("dags", "reserialize")
        triggers = [
            subprocess.Popen(
                [str(self.spec.bin / "airflow"), "dags", "trigger", dag_id],
                env=self.env,
                cwd=self.home,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for dag_id in DAG_IDS
        ]
        for proc in triggers:
            _, err = proc.communicate(timeout=300)
            if proc.returncode != 0:
                raise AirflowFailed(f"airflow dags trigger failed: {err.decode()[-2000:]}")
        if self.major >= 3:
            self.start("api-server", "--port", str(self.api_port), "--workers", "1")
            self.start("dag-processor")
        self.start("scheduler")
        try:
            deadline = time.monotonic() + RUNS_TIMEOUT_S
            while True:
                total, done = self._finished()
                if total == len(DAG_IDS) and done == total:
                    break
                if time.monotonic() > deadline:
                    raise AirflowFailed(
                        f"{done} of {total} DAG runs finished in {RUNS_TIMEOUT_S} s\n{self.logs()}"
                    )
                if any(proc.poll() is not None for proc in self.procs):
                    raise AirflowFailed(f"an Airflow process exited early\n{self.logs()}")
                time.sleep(1)
        finally:
            self.stop_all()
        self.generated_s = time.monotonic() - started

    # --- a copy to change ---------------------------------------------------------------

    def copy(self, dbname: str) -> str:
        """A database of its own holding the same metadata (restored from the cached dump),
        for a test that adds runs: the deployment's own database stays as the DAGs left
        it. Returns its DSN."""
        assert self.dump is not None and self.dump.exists()
        self.cluster.psql(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
        self.cluster.psql(f"CREATE DATABASE {dbname}")
        dsn = self.cluster.dsn(dbname)
        _pg(self.cluster, "pg_restore", ["--no-owner", "-d", dsn, str(self.dump)])
        return dsn

    # --- the API server -----------------------------------------------------------------

    def serve_api(self) -> str:
        """Start the API server (Airflow 2: the webserver; 3: the api-server) on the
        metadata and wait until it answers."""
        if self.major >= 3:
            (self.home / "passwords.json").write_text(json.dumps({USER: PASSWORD}))
            self.start("api-server", "--port", str(self.api_port), "--workers", "1")
            health = "/api/v2/monitor/health"
        else:
            self.start("webserver", "--port", str(self.api_port), "--workers", "1")
            health = "/health"
        url = f"http://127.0.0.1:{self.api_port}"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + health, timeout=5).status_code == 200:
                    self.api_url = url
                    return url
            except httpx.HTTPError:
                pass
            if any(p.poll() is not None for p in self.procs):
                raise AirflowFailed(f"the API server exited\n{self.logs()}")
            time.sleep(1)
        raise AirflowFailed(f"the API server did not answer in 180 s\n{self.logs()}")


def metadata_key(spec: Spec) -> str:
    digest = hashlib.sha256(f"{spec.key}:{HARNESS}".encode())
    for path in sorted(DAGS.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _pg(cluster: Sandbox, tool: str, args: Sequence[str]) -> None:
    proc = subprocess.run(
        [str(cluster.bindir / tool), *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise AirflowFailed(f"{tool} failed: {proc.stderr.strip()[-2000:]}")


def prepare(cluster: Sandbox, version: str, workdir: Path) -> Deployment:
    """A deployment of `version` whose metadata holds the runs of the DAGs in dags/: from the
    cache when it has them, else generated (and cached)."""
    workdir.mkdir(parents=True, exist_ok=True)
    spec = ensure_venv(version, log=workdir / "venv-build.log")
    dbname = "airflow_" + version.replace(".", "_")
    home = workdir / "home"
    home.mkdir(exist_ok=True)
    deployment = Deployment(version, spec, cluster, dbname, home, api_port=free_port())
    cluster.psql(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
    cluster.psql(f"CREATE DATABASE {dbname}")
    dump = cache_dir() / f"airflow-{version}-metadata-{metadata_key(spec)}.dump"
    deployment.dump = dump
    if dump.exists():
        started = time.monotonic()
        try:
            _pg(cluster, "pg_restore", ["--no-owner", "-d", deployment.dsn, str(dump)])
            deployment.restored_s = time.monotonic() - started
            return deployment
        except AirflowFailed as exc:
            # written by a newer pg_dump than this cluster's pg_restore reads (a run on the
            # newest major alone came first): generated again, and dumped by this one
            if "unsupported version" not in str(exc):
                raise
            cluster.psql(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
            cluster.psql(f"CREATE DATABASE {dbname}")
    deployment.generate()
    partial = dump.with_suffix(".partial")
    _pg(cluster, "pg_dump", ["-Fc", "-d", deployment.dsn, "-f", str(partial)])
    partial.replace(dump)
    for stale in cache_dir().glob(f"airflow-{version}-metadata-*.dump"):
        if stale != dump:
            stale.unlink()
    return deployment

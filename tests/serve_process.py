"""`opscope serve` as a real process for the service's tests: started on a free port with a
config file, waited for, asked over HTTP, stopped with SIGTERM or killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from api_servers import free_port


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class ServeProcess:
    def __init__(self, config: Path, workdir: Path, token: str | None = None) -> None:
        self.config = config
        self.workdir = workdir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"serve-{self.port}.log"
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> ServeProcess:
        env = {**os.environ, "OPSCOPE_STATE_DIR": str(self.workdir / "state")}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "opscope",
                    "serve",
                    "-c",
                    str(self.config),
                    "--port",
                    str(self.port),
                    *extra,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=env,
            )
        self.wait_for(lambda: self.get("/healthz").status_code == 200, "the service never answered")
        return self

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(self.base + path, params=params, headers=self.headers, timeout=10)

    def json(self, path: str, **params: Any) -> Any:
        response = self.get(path, **params)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = self.get("/metrics").text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def value(self, name: str, **labels: str) -> float | None:
        for (sample, pairs), value in self.samples().items():
            if sample == name and all(dict(pairs).get(k) == v for k, v in labels.items()):
                return value
        return None

    def collector(self, name: str) -> dict[str, Any]:
        found = {c["name"]: c for c in self.json("/api/v1/collectors")}
        return found[name]  # type: ignore[no-any-return]

    def wait_for(self, condition: Callable[[], bool], message: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"opscope serve exited {self.proc.returncode}:\n{self.output()}"
                )
            try:
                if condition():
                    return
            except (httpx.HTTPError, KeyError, IndexError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{message}:\n{self.output()}")
            time.sleep(0.1)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self) -> int:
        """SIGTERM, then the exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        finally:
            self.proc = None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self.proc = None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

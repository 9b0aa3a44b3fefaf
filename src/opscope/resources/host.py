"""The host as typed records: CPU, load, memory, swap, disks and network, read with psutil.

Collectors take their I/O as arguments, as prometheus_client's `ProcessCollector(proc=...)`
does: `HostReader` holds the functions it reads through (psutil's by default) and the sleep
between the two CPU readings, so a test can hand in fixed ones or a real host."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil

#: file systems that hold no data of their own (kernel views, in-memory, container layers)
_VIRTUAL = frozenset(
    {"proc", "sysfs", "devtmpfs", "devpts", "tmpfs", "cgroup", "cgroup2", "overlay", "squashfs",
     "securityfs", "pstore", "debugfs", "tracefs", "mqueue", "hugetlbfs", "configfs", "fusectl",
     "bpf", "autofs", "binfmt_misc", "nsfs", "ramfs", "efivarfs", "rpc_pipefs", "nfsd"}
)  # fmt: skip


@dataclass(frozen=True)
class Disk:
    mountpoint: str
    device: str
    fstype: str
    total_bytes: int
    used_bytes: int
    free_bytes: int

    @property
    def used_share(self) -> float:
        return self.used_bytes / self.total_bytes if self.total_bytes else 0.0


@dataclass(frozen=True)
class HostSample:
    hostname: str
    cpu_count: int
    #: share of all cores busy over the sample, 0-100
    cpu_percent: float
    load_1m: float
    load_5m: float
    load_15m: float
    memory_total_bytes: int
    memory_available_bytes: int
    swap_total_bytes: int
    swap_used_bytes: int
    disks: tuple[Disk, ...]
    net_bytes_sent: int
    net_bytes_recv: int
    uptime_s: float
    #: seconds the CPU figure covers
    sample_s: float

    @property
    def memory_used_percent(self) -> float:
        if not self.memory_total_bytes:
            return 0.0
        return 100.0 * (1 - self.memory_available_bytes / self.memory_total_bytes)


@dataclass
class HostReader:
    """Where host figures come from; every field is a function psutil provides."""

    cpu_times: Callable[[], Any] = psutil.cpu_times
    cpu_count: Callable[[], int | None] = psutil.cpu_count
    virtual_memory: Callable[[], Any] = psutil.virtual_memory
    swap_memory: Callable[[], Any] = psutil.swap_memory
    disk_partitions: Callable[[], Sequence[Any]] = psutil.disk_partitions
    disk_usage: Callable[[str], Any] = psutil.disk_usage
    net_io_counters: Callable[[], Any] = psutil.net_io_counters
    boot_time: Callable[[], float] = psutil.boot_time
    load_average: Callable[[], tuple[float, float, float]] = os.getloadavg
    hostname: Callable[[], str] = socket.gethostname
    sleep: Callable[[float], None] = time.sleep
    wall: Callable[[], float] = time.time
    #: mount points to read; empty: every real file system
    mountpoints: tuple[str, ...] = field(default_factory=tuple)

    def disks(self) -> tuple[Disk, ...]:
        if self.mountpoints:
            chosen = [(m, "", "") for m in self.mountpoints]
        else:
            seen: set[str] = set()
            chosen = []
            for part in self.disk_partitions():
                if part.fstype in _VIRTUAL or part.device in seen:
                    continue  # one device mounted twice (bind mounts) is one disk
                seen.add(part.device)
                chosen.append((part.mountpoint, part.device, part.fstype))
        out = []
        for mountpoint, device, fstype in chosen:
            try:
                usage = self.disk_usage(mountpoint)
            except OSError:
                continue  # unmounted since, or not readable: nothing to say about it
            out.append(
                Disk(mountpoint, device, fstype, int(usage.total), int(usage.used), int(usage.free))
            )
        return tuple(sorted(out, key=lambda d: d.mountpoint))

    def sample(self, seconds: float) -> HostSample:
        """Read everything; CPU is the busy share between two readings `seconds` apart."""
        before = self.cpu_times()
        self.sleep(seconds)
        after = self.cpu_times()
        memory = self.virtual_memory()
        swap = self.swap_memory()
        net = self.net_io_counters()
        load = self.load_average()
        return HostSample(
            hostname=self.hostname(),
            cpu_count=self.cpu_count() or 1,
            cpu_percent=busy_percent(before, after),
            load_1m=load[0],
            load_5m=load[1],
            load_15m=load[2],
            memory_total_bytes=int(memory.total),
            memory_available_bytes=int(memory.available),
            swap_total_bytes=int(swap.total),
            swap_used_bytes=int(swap.used),
            disks=self.disks(),
            net_bytes_sent=int(getattr(net, "bytes_sent", 0)),
            net_bytes_recv=int(getattr(net, "bytes_recv", 0)),
            uptime_s=max(0.0, self.wall() - self.boot_time()),
            sample_s=seconds,
        )


_IDLE = ("idle", "iowait")


def busy_percent(before: Any, after: Any) -> float:
    """Share of CPU time not idle between two `cpu_times()` readings (iowait counts as idle:
    the CPU could run something else meanwhile); guest time is already inside user time."""
    fields = [f for f in getattr(after, "_fields", ()) if f not in ("guest", "guest_nice")]
    total = sum(getattr(after, f) - getattr(before, f) for f in fields)
    idle = sum(getattr(after, f) - getattr(before, f) for f in _IDLE if f in fields)
    if total <= 0:
        return 0.0
    return float(max(0.0, min(100.0, 100.0 * (total - idle) / total)))

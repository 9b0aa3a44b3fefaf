"""What `opscope serve` reads of this host and its services, as metrics: the host (CPU,
memory, load, disks, network) and its process groups, read as `analyze resources` reads
them, when the config has a `resources:` section; and each service under `services:`,
probed on a schedule of its own.

A probe that finds its service down is data (`opscope_probe_up 0`), not a failed run; a host
that cannot be read is a failed run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import psutil

from opscope.config import Config
from opscope.db.monitor.metrics import Families
from opscope.errors import first_line
from opscope.monitor.collector import CollectContext, Collection, CollectorError
from opscope.resources.context import KIND
from opscope.resources.host import HostReader, HostSample
from opscope.resources.probes import ProbeResult, probe
from opscope.resources.processes import GroupSample, measure
from opscope.resources.settings import ServiceTarget, resource_settings, services

if TYPE_CHECKING:
    import httpx

#: the kind of the probes' collectors: `serve.collectors: {probe: {...}}` schedules them all
PROBE_KIND = "probe"


def host_families(fam: Families, host: HostSample, groups: list[GroupSample]) -> None:
    t = fam.target
    fam.gauge("opscope_host_cpus", "Logical CPUs.", []).add_metric([t], float(host.cpu_count))
    fam.gauge(
        "opscope_host_cpu_busy_ratio",
        "Share of all CPUs busy over the sample (iowait counts as idle), 0 to 1.",
        [],
    ).add_metric([t], host.cpu_percent / 100.0)
    fam.gauge(
        "opscope_host_cpu_sample_seconds", "Seconds the CPU figure was measured over.", []
    ).add_metric([t], host.sample_s)
    for minutes, value in (("1", host.load_1m), ("5", host.load_5m), ("15", host.load_15m)):
        fam.gauge(
            f"opscope_host_load{minutes}", f"Load average over {minutes} minute(s).", []
        ).add_metric([t], value)
    fam.gauge("opscope_host_memory_total_bytes", "Physical memory.", []).add_metric(
        [t], float(host.memory_total_bytes)
    )
    fam.gauge(
        "opscope_host_memory_available_bytes",
        "Memory available to new work without swapping (MemAvailable).",
        [],
    ).add_metric([t], float(host.memory_available_bytes))
    fam.gauge("opscope_host_swap_total_bytes", "Swap space.", []).add_metric(
        [t], float(host.swap_total_bytes)
    )
    fam.gauge("opscope_host_swap_used_bytes", "Swap in use.", []).add_metric(
        [t], float(host.swap_used_bytes)
    )
    fam.counter(
        "opscope_host_network_sent_bytes", "Bytes sent on every interface since boot.", []
    ).add_metric([t], float(host.net_bytes_sent))
    fam.counter(
        "opscope_host_network_received_bytes",
        "Bytes received on every interface since boot.",
        [],
    ).add_metric([t], float(host.net_bytes_recv))
    fam.gauge("opscope_host_uptime_seconds", "Seconds since the host booted.", []).add_metric(
        [t], host.uptime_s
    )
    total = fam.gauge("opscope_host_disk_total_bytes", "Size of the file system.", ["mountpoint"])
    used = fam.gauge("opscope_host_disk_used_bytes", "Bytes in use.", ["mountpoint"])
    free = fam.gauge(
        "opscope_host_disk_free_bytes", "Bytes free to unprivileged users.", ["mountpoint"]
    )
    for d in host.disks:
        total.add_metric([t, d.mountpoint], float(d.total_bytes))
        used.add_metric([t, d.mountpoint], float(d.used_bytes))
        free.add_metric([t, d.mountpoint], float(d.free_bytes))
    processes = fam.gauge(
        "opscope_process_group_processes", "Processes the group holds now.", ["group"]
    )
    cpu = fam.gauge(
        "opscope_process_group_cpu_ratio",
        "The group's CPU over the sample, in cores (2 = two cores busy).",
        ["group"],
    )
    rss = fam.gauge(
        "opscope_process_group_resident_memory_bytes", "The group's resident memory.", ["group"]
    )
    threads = fam.gauge("opscope_process_group_threads", "The group's threads.", ["group"])
    files = fam.gauge(
        "opscope_process_group_open_fds",
        "The group's open file descriptors (absent when not readable).",
        ["group"],
    )
    for g in groups:
        processes.add_metric([t, g.name], float(len(g.pids)))
        cpu.add_metric([t, g.name], g.cpu_percent / 100.0)
        rss.add_metric([t, g.name], float(g.rss_bytes))
        threads.add_metric([t, g.name], float(g.threads))
        if g.open_files is not None:
            files.add_metric([t, g.name], float(g.open_files))


@dataclass
class HostCollector:
    """This host and its process groups (`resources.processes`), over one sample of
    `resources.sample_s` each."""

    config: Config
    reader: HostReader | None = None
    cgroup_root: Path = Path("/sys/fs/cgroup")
    sleep: Callable[[float], None] = time.sleep
    target: str = ""
    kind: str = KIND
    interval_s: float = 60.0
    timeout_s: float = 30.0
    name: str = field(init=False)
    #: every instance of a sharded service reads its own host (monitor.service.owned)
    local: ClassVar[bool] = True

    def __post_init__(self) -> None:
        settings = resource_settings(self.config)
        if self.reader is None:
            self.reader = HostReader(sleep=self.sleep, mountpoints=settings.disks)
        self.target = self.target or self.reader.hostname()
        self.name = f"{KIND}/{self.target}"

    def collect(self, context: CollectContext) -> Collection:
        settings = resource_settings(self.config)
        assert self.reader is not None
        started = time.perf_counter()
        try:
            host = self.reader.sample(settings.sample_s)
            groups = (
                measure(
                    settings.processes,
                    settings.sample_s,
                    sleep=self.sleep,
                    own=os.getpid(),
                    cgroup_root=self.cgroup_root,
                )
                if settings.processes
                else []
            )
        except (OSError, psutil.Error) as exc:
            raise CollectorError(
                f"cannot read the host {self.target}: {first_line(exc) or type(exc).__name__}"
            ) from None
        fam = Families(self.target)
        host_families(fam, host, groups)
        fam.gauge(
            "opscope_host_collection_seconds", "How long the last collection took.", []
        ).add_metric([self.target], time.perf_counter() - started)
        return Collection(metrics=fam.stored, exposed=fam.exposed, taken_at=context.clock())


def probe_families(fam: Families, result: ProbeResult, now: float) -> None:
    t = fam.target
    fam.gauge(
        "opscope_probe_up", "1 when one of the probe's attempts succeeded.", ["protocol"]
    ).add_metric([t, result.kind], 1.0 if result.up else 0.0)
    latencies = result.latencies()
    if latencies:
        fam.gauge(
            "opscope_probe_duration_seconds",
            "The median answer time of the successful attempts.",
            [],
        ).add_metric([t], latencies[len(latencies) // 2] / 1000.0)
    fam.gauge("opscope_probe_attempts", "Attempts of the last probe.", []).add_metric(
        [t], float(len(result.attempts))
    )
    fam.gauge(
        "opscope_probe_successes", "Attempts of the last probe that succeeded.", []
    ).add_metric([t], float(result.successes))
    if result.kind == "http":
        status = next((a.status for a in reversed(result.attempts) if a.status is not None), 0)
        fam.gauge(
            "opscope_probe_http_status_code", "The last HTTP status (0: no answer).", []
        ).add_metric([t], float(status))
    if result.tls_expires is not None:
        expires = result.tls_expires.timestamp()
        fam.gauge(
            "opscope_probe_tls_cert_expiry_timestamp_seconds",
            "When the server's certificate expires (Unix time).",
            [],
        ).add_metric([t], expires)
        fam.gauge(
            "opscope_probe_tls_cert_expiry_seconds",
            "Seconds until the server's certificate expires.",
            [],
        ).add_metric([t], expires - now)


@dataclass
class ProbeCollector:
    """One service under `services:`, probed as `analyze resources` probes it (its
    attempts, its timeout, `resources.thresholds.slow_probe_ms`)."""

    config: Config
    target: str
    client_factory: Callable[[ServiceTarget], httpx.Client] | None = None
    kind: str = PROBE_KIND
    interval_s: float = 60.0
    timeout_s: float = 30.0
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = f"{PROBE_KIND}/{self.target}"

    def collect(self, context: CollectContext) -> Collection:
        service = services(self.config)[self.target]
        slow = resource_settings(self.config).thresholds.slow_probe_ms
        result = probe(self.target, service, client_factory=self.client_factory, slow_ms=slow)
        now = context.clock()
        fam = Families(self.target)
        probe_families(fam, result, now.timestamp())
        return Collection(metrics=fam.stored, exposed=fam.exposed, taken_at=now)


def collectors(config: Config) -> list[HostCollector | ProbeCollector]:
    """The host's, when the config has a `resources:` section, and one per service."""
    out: list[HostCollector | ProbeCollector] = []
    if config.sections.get("resources") is not None:
        out.append(HostCollector(config))
    out.extend(ProbeCollector(config, name) for name in services(config))
    return out

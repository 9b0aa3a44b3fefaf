"""The host part of `analyze resources` on this machine: process groups chosen by pattern,
pid file and systemd unit (a cgroup directory the test makes), one that burns CPU and one
that holds memory beyond their limits; a disk that fills while it is watched; and the
thresholds on plain samples, each with its near miss."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections import namedtuple
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import found
from opscope.config import Config
from opscope.findings import Report
from opscope.resources.analyze import analyze_resources
from opscope.resources.checks import DiskFilling, HighCpu, HighMemory
from opscope.resources.context import ResourcesContext
from opscope.resources.history import growth
from opscope.resources.host import Disk, HostReader, HostSample, busy_percent
from opscope.resources.processes import measure
from opscope.resources.settings import ProcessGroup, ResourceSettings, ResourceThresholds


def _config(tmp: Path, **settings: Any) -> Config:
    return Config(sections={"resources": ResourceSettings(**settings)}, state_dir=tmp)


def _spawn(code: str, tag: str) -> subprocess.Popen[bytes]:
    # the tag is in the command line, for the pattern to find
    return subprocess.Popen([sys.executable, "-c", f"# {tag}\n{code}"])


@pytest.fixture
def tag() -> str:
    return "opscope-test-" + uuid.uuid4().hex[:8]


@pytest.fixture
def burner(tag: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = _spawn("while True: pass", tag + "-burn")
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def holder(tag: str) -> Iterator[subprocess.Popen[bytes]]:
    code = "import time\nblock = bytearray(150 << 20)\nprint('ready', flush=True)\ntime.sleep(600)"
    proc = subprocess.Popen([sys.executable, "-c", f"# {tag}-hold\n{code}"], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


@pytest.fixture
def sleeper(tag: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = _spawn("import time\ntime.sleep(600)", tag + "-sleep")
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_process_groups_over_their_limits(
    tmp_path: Path,
    tag: str,
    burner: subprocess.Popen[bytes],
    holder: subprocess.Popen[bytes],
    sleeper: subprocess.Popen[bytes],
) -> None:
    pid_file = tmp_path / "holder.pid"
    pid_file.write_text(f"{holder.pid}\n")
    # a systemd unit is the processes of its cgroup: here, a cgroup directory of our own
    unit = tmp_path / "cgroup" / "system.slice" / "sleeper.service"
    unit.mkdir(parents=True)
    (unit / "cgroup.procs").write_text(f"{sleeper.pid}\n")
    groups = {
        "burner": ProcessGroup(pattern=f"{tag}-burn", cpu_percent=30),
        "holder": ProcessGroup(pid_file=str(pid_file), memory_bytes=100 << 20, cpu_percent=30),
        # the near misses: a sleeping process under both limits, and a group of nothing
        "sleeper": ProcessGroup(systemd_unit="sleeper", cpu_percent=30, memory_bytes=100 << 20),
        "nobody": ProcessGroup(pattern=f"{tag}-absent"),
    }
    config = _config(tmp_path, processes=groups, sample_s=1.0)
    report = analyze_resources(
        config, parts=["host"], only=["high_cpu", "high_memory"], cgroup_root=tmp_path / "cgroup"
    )
    summary = {g["name"]: g for g in report.summary[report.targets[0].name]["processes"]}
    assert summary["burner"]["processes"] == 1
    assert summary["sleeper"]["selector"] == "systemd unit sleeper.service"
    assert summary["nobody"]["processes"] == 0 and summary["nobody"]["note"] == "no process matches"
    cpu = [f for f in found(report, "high_cpu") if f.object.startswith("process:")]
    assert [f.object for f in cpu] == ["process:burner"]
    assert cpu[0].evidence["pids"] == [burner.pid]
    assert float(cpu[0].evidence["cpu_percent"]) >= 30
    memory = [f for f in found(report, "high_memory") if f.object.startswith("process:")]
    assert [f.object for f in memory] == ["process:holder"]
    assert int(memory[0].evidence["rss_bytes"]) >= 150 << 20
    assert memory[0].evidence["selector"] == f"pid file {pid_file}"


def test_a_pid_file_group_takes_the_children(tmp_path: Path, tag: str) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c",
         f"# {tag}\nimport subprocess, sys, time\n"
         "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
         "print(child.pid, flush=True)\ntime.sleep(600)"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        pid_file = tmp_path / "app.pid"
        pid_file.write_text(str(parent.pid))
        (sample,) = measure(
            {"app": ProcessGroup(pid_file=str(pid_file))}, 0.1, sleep=time.sleep, own=0
        )
        assert set(sample.pids) == {parent.pid, child}
        missing = tmp_path / "gone.pid"
        (empty,) = measure(
            {"gone": ProcessGroup(pid_file=str(missing))}, 0.1, sleep=time.sleep, own=0
        )
        assert empty.pids == () and empty.note is not None and "cannot read" in empty.note
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()


def test_a_disk_filling_while_it_is_watched(tmp_path: Path) -> None:
    target = tmp_path / "fill"
    chunk = b"\0" * (1 << 20)

    def write_then_sleep(seconds: float) -> None:
        with target.open("wb") as fh:
            for _ in range(300):
                fh.write(chunk)
            fh.flush()
            import os

            os.fsync(fh.fileno())
        time.sleep(seconds)

    mount = str(tmp_path)
    reader = HostReader(mountpoints=(mount,), sleep=write_then_sleep)
    config = _config(tmp_path / "state", thresholds=ResourceThresholds(disk_full_warning_hours=1e6))
    report = analyze_resources(
        config, parts=["host"], only=["disk_filling"], window_s=0.5, reader=reader
    )
    (f,) = found(report, "disk_filling")
    assert f.object == f"disk:{mount}"
    # what it grew over the time it was watched: the file written, and what other processes
    # on this shared disk wrote meanwhile
    grew = float(f.evidence["bytes_per_hour"]) * float(f.evidence["measured_over_s"]) / 3600
    assert grew >= 0.95 * (300 << 20)
    hours = float(f.evidence["hours_until_full"])
    assert hours == pytest.approx(f.evidence["free_bytes"] / f.evidence["bytes_per_hour"], abs=0.01)

    # the near miss: watched again while the file is deleted, the disk does not fill
    def delete_then_sleep(seconds: float) -> None:
        target.unlink()
        time.sleep(seconds)

    reader = HostReader(mountpoints=(mount,), sleep=delete_then_sleep)
    again = analyze_resources(
        config, parts=["host"], only=["disk_filling"], window_s=0.5, reader=reader
    )
    assert not found(again, "disk_filling")


# --- thresholds on plain samples ----------------------------------------------------------

Times = namedtuple("Times", "user nice system idle iowait irq softirq steal guest guest_nice")


def test_busy_share_between_two_readings() -> None:
    before = Times(100, 0, 50, 800, 50, 0, 0, 0, 10, 0)
    after = Times(160, 0, 70, 820, 50, 0, 0, 0, 40, 0)
    # 80 busy of 100 elapsed; guest time is inside user time and not counted twice
    assert busy_percent(before, after) == pytest.approx(80.0)
    assert busy_percent(before, before) == 0.0


def _sample(
    cpu: float = 10.0, available: int = 8 << 30, disks: tuple[Disk, ...] = ()
) -> HostSample:
    return HostSample("h", 4, cpu, 1.0, 1.0, 1.0, 16 << 30, available, 0, 0, disks, 0, 0,
                      1e5, 1.0)  # fmt: skip


def _run(check: Any, sample: HostSample, **extra: Any) -> Report:
    ctx = ResourcesContext(target="h", now=datetime(2026, 1, 1, tzinfo=UTC), host=sample, **extra)
    return Report(findings=list(check.run(ctx)))


def test_host_cpu_and_memory_thresholds() -> None:
    assert [f.severity for f in _run(HighCpu(), _sample(cpu=95.0)).findings] == ["warning"]
    assert [f.severity for f in _run(HighCpu(), _sample(cpu=99.0)).findings] == ["critical"]
    assert not _run(HighCpu(), _sample(cpu=89.9)).findings  # the near miss
    # 16 GiB, 1 GiB available: 93.75% used
    (mem,) = _run(HighMemory(), _sample(available=1 << 30)).findings
    assert mem.evidence["memory_used_percent"] == 93.8
    assert not _run(HighMemory(), _sample(available=2 << 30)).findings  # 87.5%: near miss


def test_disk_growth_and_time_until_full() -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    disk = Disk("/data", "/dev/sdb", "ext4", 100 << 30, 90 << 30, 10 << 30)
    before = {"/data": (now - timedelta(hours=2), 88 << 30)}
    rates = growth(before, (disk,), now)  # 2 GiB in 2 h: 1 GiB/h, 10 GiB free: 10 h
    (f,) = _run(DiskFilling(), _sample(disks=(disk,)), growth=rates).findings
    assert f.severity == "critical" and f.evidence["hours_until_full"] == 10.0
    slow = growth({"/data": (now - timedelta(hours=200), 88 << 30)}, (disk,), now)
    # 2 GiB in 200 h: 1000 h until full, past the 168 h warning: the near miss
    assert not _run(DiskFilling(), _sample(disks=(disk,)), growth=slow).findings
    shrinking = growth({"/data": (now - timedelta(hours=1), 95 << 30)}, (disk,), now)
    assert not _run(DiskFilling(), _sample(disks=(disk,)), growth=shrinking).findings

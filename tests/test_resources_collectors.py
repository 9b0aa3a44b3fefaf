"""The host and probe collectors of `opscope serve`: the real service probing real local
servers (one up, one refused, one over TLS with a certificate from the test's own authority)
and reading this host and a process group it starts; a probe that fails is data, a host that
cannot be read is a failed run."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from pydantic import BaseModel

from opscope.config import Config
from opscope.db.monitor.metrics import Families
from opscope.findings import utc_now
from opscope.monitor.collector import CollectContext, CollectorError
from opscope.resources.collector import (
    PROBE_KIND,
    HostCollector,
    ProbeCollector,
    collectors,
    host_families,
    probe_families,
)
from opscope.resources.host import HostReader
from opscope.resources.probes import Attempt, ProbeResult
from opscope.resources.processes import GroupSample
from opscope.resources.settings import ResourceSettings, Services, ServiceTarget
from probe_servers import Server, make_authority, refused_port, serve_health, server_context
from serve_process import ServeProcess, write_config

MARKER = "opscope-collector-test-group"


@pytest.fixture
def health() -> Iterator[Server]:
    with serve_health() as server:
        yield server


@pytest.fixture
def group() -> Iterator[int]:
    """A process for a process group to find, by a marker in its command line."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)", MARKER],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait(10)


def test_the_service_probes_services_and_reads_the_host(
    health: Server, group: int, tmp_path: Path
) -> None:
    ca = make_authority(tmp_path)
    host = socket.gethostname()
    down_port = refused_port()
    with serve_health(server_context(ca, tmp_path, days=30)) as tls:
        path = write_config(
            tmp_path / "opscope.yaml",
            {
                "services": {
                    "shop": {"url": health.url, "attempts": 1, "timeout_s": 2},
                    "gone": {"url": f"http://127.0.0.1:{down_port}/", "attempts": 1},
                    "secure": {"url": tls.url, "ca_file": str(ca.path), "attempts": 1},
                    "cache": {"tcp": f"127.0.0.1:{down_port}", "attempts": 1},
                },
                "resources": {
                    "disks": ["/"],
                    "sample_s": 0.2,
                    "processes": {"marked": {"pattern": MARKER}},
                },
                "serve": {
                    "store": str(tmp_path / "store.db"),
                    "interval_s": 0.5,
                    # the probes on a schedule of their own: every probe by its kind
                    "collectors": {
                        PROBE_KIND: {"interval_s": 0.3},
                        f"analysis/resources/{host}": {"enabled": False},
                    },
                },
            },
        )
        service = ServeProcess(path, tmp_path).start()
        try:
            names = ("probe/shop", "probe/gone", "probe/secure", "probe/cache", f"resources/{host}")
            service.wait_for(
                lambda: all(service.collector(n)["runs"] >= 2 for n in names), "never collected"
            )
            assert service.collector("probe/shop")["interval_s"] == 0.3
            assert service.collector(f"resources/{host}")["interval_s"] == 0.5
            # a service that is down is what the probe found, not a failure of the probe
            for name in names:
                assert service.value("opscope_collector_up", collector=name) == 1.0, name
            # the trap: the service that answers is up
            assert service.value("opscope_probe_up", target="shop", protocol="http") == 1.0
            assert service.value("opscope_probe_http_status_code", target="shop") == 200.0
            took = service.value("opscope_probe_duration_seconds", target="shop")
            assert took is not None and 0 < took < 2
            assert service.value("opscope_probe_up", target="gone", protocol="http") == 0.0
            assert service.value("opscope_probe_http_status_code", target="gone") == 0.0
            assert service.value("opscope_probe_duration_seconds", target="gone") is None
            assert service.value("opscope_probe_up", target="cache", protocol="tcp") == 0.0
            assert service.value("opscope_probe_up", target="secure") == 1.0
            left = service.value("opscope_probe_tls_cert_expiry_seconds", target="secure")
            assert left is not None and 29.9 * 86400 < left <= 30 * 86400
            assert service.value("opscope_probe_tls_cert_expiry_seconds", target="shop") is None

            # the host, as psutil reads it
            assert service.value("opscope_host_cpus", target=host) == psutil.cpu_count()
            memory = psutil.virtual_memory().total
            assert service.value("opscope_host_memory_total_bytes", target=host) == memory
            disk = psutil.disk_usage("/").total
            assert service.value("opscope_host_disk_total_bytes", mountpoint="/") == disk
            busy = service.value("opscope_host_cpu_busy_ratio", target=host)
            assert busy is not None and 0.0 <= busy <= 1.0
            assert service.value("opscope_process_group_processes", group="marked") == 1.0
            rss = service.value("opscope_process_group_resident_memory_bytes", group="marked")
            assert rss is not None and rss > 1 << 20  # a Python interpreter

            # the service starts failing: the next probe says so, and the store keeps both
            health.behaviour.status = 503
            service.wait_for(
                lambda: service.value("opscope_probe_up", target="shop") == 0.0, "still up"
            )
            assert service.value("opscope_probe_http_status_code", target="shop") == 503.0
            [series] = service.json("/api/v1/series", name="opscope_probe_up", match="target=shop")
            values = [p[1] for p in series["points"]]
            assert values[0] == 1.0 and values[-1] == 0.0
            [gone] = service.json("/api/v1/series", name="opscope_probe_up", match="target=gone")
            assert gone["points"] and {p[1] for p in gone["points"]} == {0.0}
            [memory_series] = service.json("/api/v1/series", name="opscope_host_memory_total_bytes")
            assert len(memory_series["points"]) >= 2
        finally:
            assert service.stop() == 0, service.output()


def _config(**sections: BaseModel) -> Config:
    return Config(sections=sections)


def test_a_host_that_cannot_be_read_is_a_failed_run() -> None:
    def unreadable() -> object:
        raise PermissionError(13, "Permission denied", "/proc/stat")

    reader = HostReader(cpu_times=unreadable, sleep=lambda _: None, hostname=lambda: "box")
    collector = HostCollector(_config(resources=ResourceSettings()), reader=reader)
    assert collector.name == "resources/box"
    with pytest.raises(CollectorError, match=r"^cannot read the host box: .*Permission denied"):
        collector.collect(CollectContext(history=None, clock=utc_now))


def test_which_collectors_a_config_makes() -> None:
    assert collectors(_config()) == []
    probes = collectors(
        _config(services=Services({"shop": ServiceTarget(url="http://127.0.0.1:9/")}))
    )
    assert [(c.name, c.kind, c.target) for c in probes] == [("probe/shop", "probe", "shop")]
    assert isinstance(probes[0], ProbeCollector)
    # the host only when the config has a resources section: serve watches what it is told to
    [host] = collectors(_config(resources=ResourceSettings()))
    assert isinstance(host, HostCollector) and host.target == socket.gethostname()
    assert host.kind == "resources"


def test_every_family_is_documented() -> None:
    fam = Families("box")
    sample = HostReader(sleep=lambda _: None).sample(0.0)
    group = GroupSample("g", "pattern x", (1,), 50.0, 1 << 20, 1.0, 3, 7)
    host_families(fam, sample, [group])
    result = ProbeResult(
        "shop",
        "http",
        "https://shop/",
        (Attempt(True, 12.0, 200),),
        tls_expires=dt.datetime.now(dt.UTC) + dt.timedelta(days=3),
    )
    probe_families(fam, result, time.time())
    served = (Path(__file__).resolve().parent.parent / "docs" / "serve.md").read_text()
    names = {s.name for f in [*fam.stored, *fam.exposed] for s in f.samples}
    assert "opscope_probe_tls_cert_expiry_seconds" in names and len(names) > 25
    for name in sorted(names | {"opscope_host_collection_seconds"}):
        assert f"`{name}`" in served, f"{name} is not in docs/serve.md"


def test_a_bad_schedule_for_the_probes_is_one_line_naming_the_key(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "opscope.yaml",
        {
            "services": {"shop": {"url": "http://127.0.0.1:9/"}},
            "serve": {"collectors": {PROBE_KIND: {"interval_s": 0}}},
        },
    )
    done = subprocess.run(
        [sys.executable, "-m", "opscope", "serve", "-c", str(path), "--port", "9"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "serve.collectors.probe.interval_s" in line, line

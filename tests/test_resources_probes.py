"""Uptime probes against real local servers: a health endpoint that stops answering, one that
answers 503, one that is slow but in time (the near miss); HTTPS with certificates the test
issues from its own authority (one expiring in 5 days, one in 90, one expired); TCP services
that answer, answer wrong, or are not there."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import found
from opscope.config import Config
from opscope.findings import Report
from opscope.resources.analyze import analyze_resources
from opscope.resources.settings import ResourceSettings, Services, ServiceTarget
from probe_servers import (
    Authority,
    Server,
    make_authority,
    pong_server,
    serve_health,
    server_context,
)


@pytest.fixture
def health() -> Iterator[Server]:
    with serve_health() as server:
        yield server


def _report(tmp: Path, **services: ServiceTarget) -> Report:
    config = Config(
        sections={"services": Services(services), "resources": ResourceSettings()}, state_dir=tmp
    )
    return analyze_resources(config, parts=["services"])


def test_a_health_endpoint_that_stops_answering(health: Server, tmp_path: Path) -> None:
    target = ServiceTarget(url=health.url, timeout_s=0.5, attempts=2)
    up = _report(tmp_path, shop=target)
    assert not up.findings
    (entry,) = up.summary[up.targets[0].name]["services"]
    assert entry["up"] and entry["status"] == 200 and entry["latency_ms_median"] < 500
    # the near miss: slow, but within the timeout
    health.behaviour.delay_s = 0.2
    assert not _report(tmp_path, shop=target).findings
    health.behaviour.delay_s = 3.0  # it stops answering
    (down,) = found(_report(tmp_path, shop=target), "service_down")
    assert down.severity == "critical" and down.object == "service:shop"
    assert down.title == "shop is down: no answer within 0.5 s"
    assert [a["ok"] for a in down.evidence["attempts"]] == [False, False]
    health.behaviour.delay_s = 0.0
    health.behaviour.status = 503  # it answers, but says it is not well
    (sick,) = found(_report(tmp_path, shop=target), "service_down")
    assert sick.title == "shop is down: HTTP 503"
    # unless 503 is what the config expects of it
    assert not _report(tmp_path, shop=ServiceTarget(url=health.url, expect=[200, 503])).findings


# --- TLS ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return make_authority(tmp_path_factory.mktemp("ca"))


def test_a_certificate_about_to_expire(authority: Authority, tmp_path: Path) -> None:
    with (
        serve_health(server_context(authority, tmp_path, days=5)) as with_soon,
        serve_health(server_context(authority, tmp_path, days=90)) as with_later,
        serve_health(server_context(authority, tmp_path, days=0, past=True)) as with_gone,
    ):
        ca = str(authority.path)
        report = _report(
            tmp_path,
            soon=ServiceTarget(url=with_soon.url, ca_file=ca, attempts=1),
            later=ServiceTarget(url=with_later.url, ca_file=ca, attempts=1),  # the near miss
            gone=ServiceTarget(url=with_gone.url, ca_file=ca, attempts=1),
        )
    tls = {f.object: f for f in found(report, "tls_expiring")}
    assert set(tls) == {"service:soon", "service:gone"}
    assert tls["service:soon"].severity == "warning"
    assert 4.9 < float(tls["service:soon"].evidence["days_left"]) <= 5.0
    assert tls["service:soon"].evidence["subject"] == "localhost"
    assert tls["service:gone"].severity == "critical"
    assert "expired" in tls["service:gone"].title
    # an expired certificate fails verification: the service is down too, and says why
    (down,) = found(report, "service_down")
    assert down.object == "service:gone" and "expired" in down.title
    services = {s["name"]: s for s in report.summary[report.targets[0].name]["services"]}
    assert services["later"]["up"] and 89 < services["later"]["tls_days_left"] <= 90


# --- TCP ----------------------------------------------------------------------------------


@pytest.fixture
def pong() -> Iterator[int]:
    with pong_server() as port:
        yield port


def test_tcp_services(pong: int, tmp_path: Path) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    free = int(closed.getsockname()[1])
    closed.close()
    report = _report(
        tmp_path,
        cache=ServiceTarget(tcp=f"127.0.0.1:{pong}", send="PING\r\n", expect="+PONG"),
        wrong=ServiceTarget(tcp=f"127.0.0.1:{pong}", send="PING\r\n", expect="+OK", attempts=1),
        gone=ServiceTarget(tcp=f"127.0.0.1:{free}", attempts=1, timeout_s=1),
    )
    down = {f.object: f for f in found(report, "service_down")}
    assert set(down) == {"service:wrong", "service:gone"}
    assert down["service:wrong"].title == "wrong is down: answered '+PONG\\r\\n', not '+OK'"
    assert down["service:gone"].title == "gone is down: Connection refused"
    services = {s["name"]: s for s in report.summary[report.targets[0].name]["services"]}
    assert services["cache"]["up"] and services["cache"]["successes"] == 3


def test_a_password_in_a_service_url_is_never_shown(tmp_path: Path) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = int(closed.getsockname()[1])
    closed.close()
    url = f"http://monitor:s3cret-pass@127.0.0.1:{port}/healthz"
    report = _report(tmp_path, shop=ServiceTarget(url=url, attempts=1, timeout_s=1))
    (down,) = found(report, "service_down")
    assert "s3cret" not in report.to_json()
    assert "127.0.0.1" in str(down.evidence["address"])

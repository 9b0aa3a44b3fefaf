"""Uptime probes against real local servers: a health endpoint that stops answering, one that
answers 503, one that is slow but in time (the near miss); HTTPS with certificates the test
issues from its own authority (one expiring in 5 days, one in 90, one expired); TCP services
that answer, answer wrong, or are not there."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import found
from opscope.config import Config
from opscope.findings import Report
from opscope.resources.analyze import analyze_resources
from opscope.resources.settings import ResourceSettings, Services, ServiceTarget


@dataclass
class Behaviour:
    status: int = 200
    delay_s: float = 0.0


class _Handler(BaseHTTPRequestHandler):
    behaviour: Behaviour

    def do_GET(self) -> None:
        time.sleep(self.server.behaviour.delay_s)  # type: ignore[attr-defined]
        body = b'{"ok": true}'
        self.send_response(self.server.behaviour.status)  # type: ignore[attr-defined]
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Server:
    url: str
    behaviour: Behaviour


def _serve(context: ssl.SSLContext | None = None) -> Generator[Server, None, None]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.behaviour = Behaviour()  # type: ignore[attr-defined]
    scheme = "http"
    if context is not None:
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        port = httpd.server_address[1]
        yield Server(f"{scheme}://localhost:{port}/healthz", httpd.behaviour)  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def health() -> Iterator[Server]:
    yield from _serve()


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


@dataclass
class Authority:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    path: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("opscope test CA"))
        .issuer_name(_name("opscope test CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Authority(key, cert, path)


def _server_context(ca: Authority, tmp: Path, *, days: float, past: bool = False) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(days=30)
    end = now - dt.timedelta(days=1) if past else now + dt.timedelta(days=days)
    ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    cert_file, key_file = tmp / f"server-{days}-{past}.pem", tmp / f"server-{days}-{past}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


def test_a_certificate_about_to_expire(authority: Authority, tmp_path: Path) -> None:
    soon = _serve(_server_context(authority, tmp_path, days=5))
    later = _serve(_server_context(authority, tmp_path, days=90))
    gone = _serve(_server_context(authority, tmp_path, days=0, past=True))
    with_soon, with_later, with_gone = next(soon), next(later), next(gone)
    try:
        ca = str(authority.path)
        report = _report(
            tmp_path,
            soon=ServiceTarget(url=with_soon.url, ca_file=ca, attempts=1),
            later=ServiceTarget(url=with_later.url, ca_file=ca, attempts=1),  # the near miss
            gone=ServiceTarget(url=with_gone.url, ca_file=ca, attempts=1),
        )
    finally:
        for gen in (soon, later, gone):
            gen.close()
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
    """A TCP service answering PING with +PONG, as Redis does."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    if conn.recv(64).startswith(b"PING"):
                        conn.sendall(b"+PONG\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        server.close()


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

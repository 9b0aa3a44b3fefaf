"""Uptime probes: HTTP(S) with the status, the latency and the days until the server's
certificate expires; TCP (databases, Redis) with the connect time and, optionally, what the
service answers to a line sent. Each probe tries `attempts` times; the client and the clock
are arguments, so tests hand in their own."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from opscope.errors import first_line
from opscope.redact import redact
from opscope.resources.settings import ServiceTarget, parse_host_port

if TYPE_CHECKING:
    import httpx

Timer = Callable[[], float]


@dataclass(frozen=True)
class Attempt:
    ok: bool
    latency_ms: float | None
    #: the HTTP status, when one came back
    status: int | None = None
    #: why it failed, in one line
    error: str | None = None


@dataclass(frozen=True)
class ProbeResult:
    name: str
    kind: str
    #: what was probed, password masked
    address: str
    attempts: tuple[Attempt, ...]
    #: the certificate's notAfter, for HTTPS with verification
    tls_expires: datetime | None = None
    tls_subject: str | None = None
    #: the failure that says the certificate itself is the problem (expired, unknown CA)
    tls_error: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def successes(self) -> int:
        return sum(a.ok for a in self.attempts)

    @property
    def up(self) -> bool:
        return self.successes > 0

    def latencies(self) -> list[float]:
        return sorted(a.latency_ms for a in self.attempts if a.ok and a.latency_ms is not None)

    def days_left(self, now: datetime) -> float | None:
        if self.tls_expires is None:
            return None
        return (self.tls_expires - now).total_seconds() / 86400

    def last_error(self) -> str | None:
        for a in reversed(self.attempts):
            if not a.ok:
                return a.error
        return None


def _status_ok(status: int, expect: int | list[int] | str | None) -> bool:
    if expect is None:
        return 200 <= status < 400
    if isinstance(expect, int):
        return status == expect
    if isinstance(expect, list):
        return status in expect
    return False


def _peer_certificate(response: httpx.Response) -> dict[str, object] | None:
    stream = response.extensions.get("network_stream")
    if stream is None:
        return None
    ssl_object = stream.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    cert = ssl_object.getpeercert()
    return cert or None


def _subject(cert: dict[str, object]) -> str | None:
    for rdn in cert.get("subject", ()):  # type: ignore[attr-defined]
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


#: bytes of a health endpoint's body read at most
_MAX_BODY = 1 << 20

_TLS_WORDS = ("certificate", "CERTIFICATE_VERIFY_FAILED", "SSL")


def _error_text(exc: BaseException) -> str:
    text = first_line(exc) or type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    # httpx wraps the ssl error; its reason is the useful part
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return redact(getattr(cause, "verify_message", None) or cause.reason or str(cause))
        cause = cause.__cause__ or cause.__context__
    return redact(text)


def probe_http(
    name: str,
    target: ServiceTarget,
    *,
    client_factory: Callable[[ServiceTarget], httpx.Client] | None = None,
    timer: Timer = time.perf_counter,
    slow_ms: float | None = None,
) -> ProbeResult:
    import httpx

    assert target.url is not None
    make = client_factory or default_client
    attempts = []
    expires: datetime | None = None
    subject: str | None = None
    tls_error: str | None = None
    with make(target) as client:
        for _ in range(target.attempts):
            start = timer()
            try:
                # streamed: the certificate is read while the connection is still open
                with client.stream("GET", target.url) as response:
                    cert = _peer_certificate(response)
                    read = 0
                    for chunk in response.iter_bytes():
                        read += len(chunk)
                        if read > _MAX_BODY:
                            break  # a health answer this big is not read to its end
                elapsed = (timer() - start) * 1000
                if cert and "notAfter" in cert:
                    expires = datetime.fromtimestamp(
                        ssl.cert_time_to_seconds(str(cert["notAfter"])), UTC
                    )
                    subject = _subject(cert)
                ok = _status_ok(response.status_code, target.expect)
                error = None if ok else f"HTTP {response.status_code}"
                if ok and slow_ms is not None and elapsed > slow_ms:
                    ok, error = False, f"answered in {elapsed:.0f} ms (over {slow_ms:g} ms)"
                attempts.append(Attempt(ok, round(elapsed, 2), response.status_code, error))
            except httpx.TimeoutException:
                attempts.append(
                    Attempt(False, None, None, f"no answer within {target.timeout_s:g} s")
                )
            except httpx.HTTPError as exc:
                message = _error_text(exc)
                if any(w in message for w in _TLS_WORDS) and target.url.startswith("https"):
                    tls_error = message
                attempts.append(Attempt(False, None, None, message))
    return ProbeResult(
        name=name,
        kind="http",
        address=redact(target.url),
        attempts=tuple(attempts),
        tls_expires=expires,
        tls_subject=subject,
        tls_error=tls_error,
    )


def default_client(target: ServiceTarget) -> httpx.Client:
    import httpx

    verify: ssl.SSLContext | bool = target.verify
    if target.verify and target.ca_file:
        verify = ssl.create_default_context(cafile=target.ca_file)
    return httpx.Client(timeout=target.timeout_s, verify=verify, follow_redirects=False)


def probe_tcp(
    name: str,
    target: ServiceTarget,
    *,
    connect: Callable[[tuple[str, int], float], socket.socket] = socket.create_connection,
    timer: Timer = time.perf_counter,
    slow_ms: float | None = None,
) -> ProbeResult:
    assert target.tcp is not None
    host, port = parse_host_port(target.tcp)
    attempts = []
    for _ in range(target.attempts):
        start = timer()
        try:
            with connect((host, port), target.timeout_s) as sock:
                elapsed = (timer() - start) * 1000
                error = None
                if target.send is not None or isinstance(target.expect, str):
                    if target.send is not None:
                        sock.sendall(target.send.encode())
                    sock.settimeout(target.timeout_s)
                    answer = sock.recv(4096).decode("utf-8", "replace")
                    elapsed = (timer() - start) * 1000
                    if isinstance(target.expect, str) and target.expect not in answer:
                        error = f"answered {answer[:60]!r}, not {target.expect!r}"
                ok = error is None
                if ok and slow_ms is not None and elapsed > slow_ms:
                    ok, error = False, f"answered in {elapsed:.0f} ms (over {slow_ms:g} ms)"
                attempts.append(Attempt(ok, round(elapsed, 2), None, error))
        except TimeoutError:
            attempts.append(Attempt(False, None, None, f"no answer within {target.timeout_s:g} s"))
        except OSError as exc:
            attempts.append(Attempt(False, None, None, exc.strerror or type(exc).__name__))
    return ProbeResult(name=name, kind="tcp", address=target.tcp, attempts=tuple(attempts))


def probe(
    name: str,
    target: ServiceTarget,
    *,
    client_factory: Callable[[ServiceTarget], httpx.Client] | None = None,
    timer: Timer = time.perf_counter,
    slow_ms: float | None = None,
) -> ProbeResult:
    if target.url is not None:
        return probe_http(name, target, client_factory=client_factory, timer=timer, slow_ms=slow_ms)
    return probe_tcp(name, target, timer=timer, slow_ms=slow_ms)

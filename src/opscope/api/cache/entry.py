"""A cached answer, how it is written to a backend, and what decides whether an answer may be
stored at all.

Safe by default: only GET answers with a 2xx status (206 aside) are stored, never one that
sets a cookie, says `no-store`, `private` or `no-cache`, varies on a header the rule does not
key on (or on `*`), or streams events. A `max-age` or `s-maxage` shorter than the rule's TTL
wins.

The ETag is strong and deterministic: a hash of the stored status, the headers that describe
the representation (type, encoding, language) and the body bytes, so every process that
computes it for the same answer gives the same one (an app's own ETag is kept). The entry is
written as plain bytes (a fixed header, then the headers, then the body): never pickled, so a
backend's content can never run code in the app.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Headers = list[tuple[bytes, bytes]]

_MAGIC = b"OPC1"
_HEAD = struct.Struct("<4sHdddH")
_PAIR = struct.Struct("<HI")

#: headers never stored: the connection's own, or recomputed when served
_HOP = frozenset(
    (b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"date", b"age",
     b"server", b"set-cookie", b"cache-status", b"upgrade", b"proxy-connection", b"trailer")
)  # fmt: skip
#: what describes the representation, and so is part of its ETag with the body
_REPRESENTATION = (b"content-type", b"content-encoding", b"content-language")


@dataclass(slots=True)
class Entry:
    status: int
    headers: Headers
    body: bytes
    etag: bytes
    #: wall-clock seconds: when it was stored, until when it is fresh, until when it may
    #: still be served stale while it is refreshed
    stored_at: float
    fresh_until: float
    stale_until: float

    @property
    def size(self) -> int:
        """Bytes it takes, roughly, for the memory backend's bound."""
        return len(self.body) + sum(len(k) + len(v) + 16 for k, v in self.headers) + 120

    def encode(self) -> bytes:
        parts = [
            _HEAD.pack(_MAGIC, self.status, self.stored_at, self.fresh_until, self.stale_until,
                       len(self.headers))
        ]  # fmt: skip
        for name, value in self.headers:
            parts.append(_PAIR.pack(len(name), len(value)))
            parts.append(name)
            parts.append(value)
        parts.append(self.body)
        return b"".join(parts)


def decode(blob: bytes) -> Entry | None:
    """An entry from its bytes; None for anything else (another version, a stray key)."""
    if len(blob) < _HEAD.size or blob[:4] != _MAGIC:
        return None
    try:
        _, status, stored, fresh, stale, count = _HEAD.unpack_from(blob)
        pos = _HEAD.size
        headers: Headers = []
        etag = b""
        for _ in range(count):
            n, v = _PAIR.unpack_from(blob, pos)
            pos += _PAIR.size
            name = blob[pos : pos + n]
            value = blob[pos + n : pos + n + v]
            pos += n + v
            if name == b"etag":
                etag = value
            headers.append((name, value))
    except struct.error:
        return None
    if pos > len(blob):
        return None
    return Entry(status, headers, blob[pos:], etag, stored, fresh, stale)


def strong_etag(status: int, headers: Sequence[tuple[bytes, bytes]], body: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    h.update(str(status).encode())
    for name in _REPRESENTATION:
        for k, v in headers:
            if k == name:
                h.update(b"\0" + k + b":" + v)
    h.update(b"\0\0")
    h.update(body)
    return b'"' + base64.urlsafe_b64encode(h.digest()).rstrip(b"=") + b'"'


def directives(value: bytes) -> dict[bytes, bytes]:
    """Cache-Control's directives, names lowercased, `max-age=60` as {b"max-age": b"60"}."""
    out: dict[bytes, bytes] = {}
    for part in value.split(b","):
        name, _, arg = part.strip().partition(b"=")
        if name:
            out[name.lower()] = arg.strip().strip(b'"')
    return out


def _seconds(value: bytes | None) -> float | None:
    if value is None:
        return None
    try:
        return max(float(int(value)), 0.0)
    except ValueError:
        return 0.0  # an unreadable max-age is treated as stale (RFC 9111 4.2.1)


#: why an answer was not stored (also what the cache's log and Cache-Status say)
NOT_2XX = "status"
SET_COOKIE = "set-cookie"
NO_STORE = "cache-control"
VARY = "vary"
STREAM = "stream"


@dataclass(slots=True)
class Verdict:
    """Whether an answer may be stored, and for how long (seconds), or why not."""

    ttl: float
    reason: str | None = None
    has_cache_control: bool = False


def verdict(
    status: int, headers: Iterable[tuple[bytes, bytes]], ttl: float, keyed: frozenset[bytes]
) -> Verdict:
    """May this answer be stored for a rule with `ttl` that keys on the headers `keyed`?"""
    if not 200 <= status < 300 or status == 206:
        return Verdict(0.0, NOT_2XX)
    has_cc = False
    for name, value in headers:
        if name == b"set-cookie":
            return Verdict(0.0, SET_COOKIE)
        if name == b"cache-control":
            has_cc = True
            d = directives(value)
            if b"no-store" in d or b"private" in d or b"no-cache" in d:
                return Verdict(0.0, NO_STORE)
            age = _seconds(d.get(b"s-maxage", d.get(b"max-age")))
            if age is not None:
                if age <= 0:
                    return Verdict(0.0, NO_STORE)
                ttl = min(ttl, age)
        elif name == b"vary":
            for v in value.split(b","):
                v = v.strip().lower()
                if v and v not in keyed:
                    return Verdict(0.0, VARY)
        elif name == b"content-type" and value.startswith(b"text/event-stream"):
            return Verdict(0.0, STREAM)
    return Verdict(ttl, None, has_cc)


def make_entry(
    status: int,
    headers: Iterable[tuple[bytes, bytes]],
    body: bytes,
    *,
    now: float,
    ttl: float,
    stale: float,
    vary: Sequence[str],
    per_user: bool,
    has_cache_control: bool,
) -> Entry:
    """The entry of a storable answer: its headers without the connection's, with an ETag
    (the app's own if it set one), a Vary naming the headers the key holds, and a
    Cache-Control when the app set none (`public` or, per user, `private`, with `max-age`
    the TTL), so that browsers and shared caches downstream keep to the same rule."""
    kept: Headers = []
    etag = b""
    vary_seen: list[bytes] = []
    for name, value in headers:
        name = name.lower()
        if name in _HOP:
            continue
        if name == b"etag":
            etag = value
        elif name == b"vary":
            vary_seen += [v.strip().lower() for v in value.split(b",") if v.strip()]
            continue
        kept.append((name, value))
    if not etag:
        etag = strong_etag(status, kept, body)
        kept.append((b"etag", etag))
    names = sorted({*vary_seen, *(v.encode("latin-1") for v in vary)})
    if names:
        kept.append((b"vary", b", ".join(names)))
    if not has_cache_control:
        scope = b"private" if per_user else b"public"
        value = scope + b", max-age=" + str(int(ttl)).encode()
        if stale:
            value += b", stale-while-revalidate=" + str(int(stale)).encode()
        kept.append((b"cache-control", value))
    return Entry(status, kept, body, etag, now, now + ttl, now + ttl + stale)


def etag_matches(if_none_match: bytes, etag: bytes) -> bool:
    """If-None-Match against an ETag, by weak comparison (RFC 9110 13.1.2)."""
    if not etag:
        return False
    value = if_none_match.strip()
    if value == b"*":
        return True
    mine = etag[2:] if etag.startswith(b"W/") else etag
    for candidate in value.split(b","):
        candidate = candidate.strip()
        if candidate.startswith(b"W/"):
            candidate = candidate[2:]
        if candidate == mine:
            return True
    return False


#: what a 304 carries of the entry's headers (RFC 9110 15.4.5)
NOT_MODIFIED_HEADERS = frozenset(
    (b"etag", b"cache-control", b"vary", b"expires", b"content-location", b"last-modified")
)

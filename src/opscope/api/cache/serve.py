"""Answering from an entry (ASGI messages and WSGI status and headers), with Age, a 304 when
If-None-Match names its ETag, and the Cache-Status header (RFC 9211) that says what the cache
did: `opscope; hit; ttl=12`, `opscope; hit; ttl=-3` (stale, being refreshed),
`opscope; fwd=miss; stored`, `opscope; fwd=miss; collapsed` (served the answer another
request computed), `opscope; fwd=miss; detail=set-cookie` (not stored, and why),
`opscope; fwd=bypass; detail=credentials`."""

from __future__ import annotations

import logging
from http import HTTPStatus

from opscope.api.cache.entry import NOT_MODIFIED_HEADERS, Entry, Headers, etag_matches
from opscope.api.types import Message, Send

log = logging.getLogger("opscope.api.cache")

_warned: set[tuple[str, str]] = set()


def warn_route(template: str, actual: str) -> None:
    """Once per pair: a rule's template matched a path that the app routed elsewhere."""
    if (template, actual) not in _warned and len(_warned) < 100:
        _warned.add((template, actual))
        log.warning(
            "opscope: the cache rule %s matched a request the app answered with the route %s: "
            "such answers are not cached",
            template,
            actual,
        )


def status_value(what: str, *, ttl: float | None = None, stored: bool = False,
                 collapsed: bool = False, detail: str | None = None) -> bytes:  # fmt: skip
    parts = ["opscope"]
    if what == "hit":
        parts.append("hit")
        if ttl is not None:
            parts.append(f"ttl={int(ttl) if ttl >= 0 else -int(-ttl) - 1}")
    else:
        parts.append(f"fwd={what}")
        if stored:
            parts.append("stored")
        if collapsed:
            parts.append("collapsed")
    if detail:
        parts.append(f"detail={detail}")
    return "; ".join(parts).encode()


def entry_response(
    entry: Entry,
    if_none_match: bytes | None,
    now: float,
    cache_status: bool,
    *,
    fresh_hit: bool = True,
    stored: bool = False,
    collapsed: bool = False,
    served_from_cache: bool = True,
) -> tuple[int, Headers, bool]:
    """(status, headers, whether the body goes along) for an answer from `entry`."""
    if if_none_match is not None and etag_matches(if_none_match, entry.etag):
        status = 304
        headers = [(k, v) for k, v in entry.headers if k in NOT_MODIFIED_HEADERS]
        with_body = False
    else:
        status = entry.status
        headers = list(entry.headers)
        headers.append((b"content-length", str(len(entry.body)).encode()))
        with_body = True
    if served_from_cache:
        age = int(now - entry.stored_at)
        if age > 0:
            headers.append((b"age", str(age).encode()))
    if cache_status:
        if not served_from_cache:
            value = status_value("miss", stored=stored)
        elif collapsed:
            value = status_value("miss", collapsed=True)
        else:
            left = entry.fresh_until - now
            value = status_value("hit", ttl=left)
        headers.append((b"cache-status", value))
    return status, headers, with_body


async def send_entry(
    entry: Entry,
    send: Send,
    if_none_match: bytes | None,
    head: bool,
    now: float,
    cache_status: bool,
    *,
    stored: bool | None = None,
    collapsed: bool = False,
) -> None:
    """Send an answer from `entry`: from the cache, or (`stored` given) the handler's own,
    just stored or not."""
    status, headers, with_body = entry_response(
        entry, if_none_match, now, cache_status, stored=bool(stored), collapsed=collapsed,
        served_from_cache=stored is None,
    )  # fmt: skip
    await send({"type": "http.response.start", "status": status, "headers": headers})
    body = entry.body if with_body and not head else b""
    await send({"type": "http.response.body", "body": body})


def with_status(start: Message, cache_status: bool, what: str, detail: str | None) -> Message:
    """A response start with Cache-Status added."""
    if not cache_status:
        return start
    headers = list(start.get("headers", ()))
    headers.append((b"cache-status", status_value(what, detail=detail)))
    return {**start, "headers": headers}


def bypassing(send: Send, cache_status: bool) -> Send:
    """The send of a request that carried credentials: its answer is marked `private` when
    the app said nothing about caching it, so no shared cache downstream keeps it either."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            if not any(k == b"cache-control" for k, _ in headers):
                headers.append((b"cache-control", b"private"))
            if cache_status:
                headers.append((b"cache-status", status_value("bypass", detail="credentials")))
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


def status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"

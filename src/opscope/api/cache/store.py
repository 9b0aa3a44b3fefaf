"""What a cache backend offers the middleware (the memory LRU and Redis both do), as a
protocol: look an entry up, take the right to compute a missing one (a lock, across
processes for Redis), store it under its tags, and drop entries by tag or path.

Each operation comes in a sync form (WSGI) and an `a`-prefixed async one (ASGI). A backend
that cannot be reached raises BackendUnavailable: the middleware counts it and lets the
request through to the handler."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from opscope.api.cache.entry import Entry


class BackendUnavailable(Exception):
    """The backend did not answer (Redis down, a timeout); the request goes to the handler."""


@dataclass(frozen=True, slots=True)
class Lock:
    """The right to compute one key's answer: a token (empty when the backend needs none)
    and the invalidation epoch when it was taken: an answer computed while entries were
    invalidated is not stored, as it may predate the invalidation."""

    token: str
    epoch: int
    #: False: another caller holds it (the epoch is still known, for storing without it)
    held: bool = True


class Backend(Protocol):
    name: str

    def get(self, key: str) -> Entry | None: ...
    def get_or_lock(self, key: str, timeout_s: float) -> tuple[Entry | None, Lock]: ...
    def lock(self, key: str, timeout_s: float) -> Lock | None: ...
    def put(self, key: str, entry: Entry, tags: Iterable[str], lock: Lock | None) -> bool: ...
    def unlock(self, key: str, lock: Lock) -> None: ...
    def invalidate(self, tags: Iterable[str] = (), paths: Iterable[str] = ()) -> int: ...

    async def aget(self, key: str) -> Entry | None: ...
    async def aget_or_lock(self, key: str, timeout_s: float) -> tuple[Entry | None, Lock]: ...
    async def alock(self, key: str, timeout_s: float) -> Lock | None: ...
    async def aput(
        self, key: str, entry: Entry, tags: Iterable[str], lock: Lock | None
    ) -> bool: ...
    async def aunlock(self, key: str, lock: Lock) -> None: ...
    async def ainvalidate(self, tags: Iterable[str] = (), paths: Iterable[str] = ()) -> int: ...

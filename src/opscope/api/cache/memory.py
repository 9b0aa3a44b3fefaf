"""The memory backend: one process's entries in an LRU bounded in bytes, with an index of
tags. What it holds is this process's only: several workers each keep their own (use Redis to
share entries, single-flight across processes and invalidate from the CLI)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from opscope.api.cache.entry import Entry
from opscope.api.cache.rules import tags_of_paths
from opscope.api.cache.store import Lock


class MemoryCache:
    """`max_bytes`: what the entries may take in all (bodies, headers and a fixed overhead
    each); the least recently used go first. An entry larger than an eighth of it is not
    kept."""

    name = "memory"

    def __init__(
        self, max_bytes: int = 64 << 20, *, clock: Callable[[], float] = time.time
    ) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be more than 0")
        self.max_bytes = max_bytes
        self.clock = clock
        self.mutex = threading.Lock()
        self.entries: OrderedDict[str, tuple[Entry, tuple[str, ...]]] = OrderedDict()
        self.tags: dict[str, set[str]] = {}
        self.bytes = 0
        #: bumped by every invalidation: an answer computed across one is not stored
        self.epoch = 0

    # --- what the middleware calls (sync; the a* forms for ASGI do the same) -----------

    def get(self, key: str) -> Entry | None:
        with self.mutex:
            item = self.entries.get(key)
            if item is None:
                return None
            entry = item[0]
            if entry.stale_until <= self.clock():
                self._drop(key)
                return None
            self.entries.move_to_end(key)
            return entry

    def get_or_lock(self, key: str, timeout_s: float) -> tuple[Entry | None, Lock]:
        # in one process the middleware's own single-flight already makes one caller
        return self.get(key), Lock("", self.epoch)

    def lock(self, key: str, timeout_s: float) -> Lock | None:
        return Lock("", self.epoch)

    def put(self, key: str, entry: Entry, tags: Iterable[str], lock: Lock | None) -> bool:
        size = entry.size
        if size > self.max_bytes // 8:
            return False
        tags = tuple(tags)
        with self.mutex:
            if lock is not None and lock.epoch != self.epoch:
                return False  # invalidated while the answer was being computed
            if key in self.entries:
                self._drop(key)
            self.entries[key] = (entry, tags)
            self.bytes += size
            for tag in tags:
                self.tags.setdefault(tag, set()).add(key)
            while self.bytes > self.max_bytes and self.entries:
                self._drop(next(iter(self.entries)))
        return True

    def unlock(self, key: str, lock: Lock) -> None:
        return None

    def invalidate(self, tags: Iterable[str] = (), paths: Iterable[str] = ()) -> int:
        """Drop the entries with any of `tags`, or of any of `paths` (a path alone: every
        query and variant of it; with a query: that query). Returns how many."""
        wanted = [*tags, *tags_of_paths(paths)]
        dropped = 0
        with self.mutex:
            self.epoch += 1
            for tag in wanted:
                for key in list(self.tags.get(tag, ())):
                    if key in self.entries:
                        self._drop(key)
                        dropped += 1
        return dropped

    def clear(self) -> None:
        with self.mutex:
            self.epoch += 1
            self.entries.clear()
            self.tags.clear()
            self.bytes = 0

    def _drop(self, key: str) -> None:
        entry, tags = self.entries.pop(key)
        self.bytes -= entry.size
        for tag in tags:
            keys = self.tags.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self.tags[tag]

    # --- the same for ASGI apps ----------------------------------------------------------

    async def aget(self, key: str) -> Entry | None:
        return self.get(key)

    async def aget_or_lock(self, key: str, timeout_s: float) -> tuple[Entry | None, Lock]:
        return self.get_or_lock(key, timeout_s)

    async def alock(self, key: str, timeout_s: float) -> Lock | None:
        return self.lock(key, timeout_s)

    async def aput(self, key: str, entry: Entry, tags: Iterable[str], lock: Lock | None) -> bool:
        return self.put(key, entry, tags, lock)

    async def aunlock(self, key: str, lock: Lock) -> None:
        return None

    async def ainvalidate(self, tags: Iterable[str] = (), paths: Iterable[str] = ()) -> int:
        return self.invalidate(tags, paths)

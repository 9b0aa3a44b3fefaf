"""The Redis backend, through redis-py: its asyncio client for ASGI apps, its sync client for
WSGI apps, made on first use.

Keys (under `prefix`, `opscope:cache:` by default): `e:<key>` an entry (expiring when it may
no longer be served, stale included), `l:<key>` the lock of a key being computed
(`SET NX PX`: it expires by itself, so a holder that crashed never blocks the key longer than
the lock timeout), `t:<tag>` the set of entry keys with a tag, `epoch` the count of
invalidations. Storing, tagging and releasing the lock are one script, as are looking up and
locking, and dropping a tag's entries: one round trip each. A single Redis (or a primary):
the scripts touch several keys, which Redis Cluster would put on different nodes.

When Redis cannot be reached, each call raises BackendUnavailable at once for `retry_s`
(no connection attempt per request), then the next request tries again: the outage is
logged once when it starts and once when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Iterable
from typing import Any

from opscope.api.cache.entry import Entry, decode
from opscope.api.cache.rules import tags_of_paths
from opscope.api.cache.store import BackendUnavailable, Lock
from opscope.errors import first_line
from opscope.redact import redact

log = logging.getLogger("opscope.api.cache")

_GET_OR_LOCK = """
local v = redis.call('GET', KEYS[1])
local e = tonumber(redis.call('GET', KEYS[3]) or '0')
if v then return {v, 0, e} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {'', 1, e} end
return {'', 0, e}
"""
_LOCK = """
local e = tonumber(redis.call('GET', KEYS[2]) or '0')
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return e end
return -1
"""
_PUT = """
local stored = 0
if tonumber(redis.call('GET', KEYS[3]) or '0') == tonumber(ARGV[4]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  local px = tonumber(ARGV[2])
  for i = 4, #KEYS do
    redis.call('SADD', KEYS[i], KEYS[1])
    if redis.call('PTTL', KEYS[i]) < px then redis.call('PEXPIRE', KEYS[i], px) end
  end
  stored = 1
end
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return stored
"""
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_INVALIDATE = """
local n = 0
for i = 2, #KEYS do
  local members = redis.call('SMEMBERS', KEYS[i])
  for j = 1, #members, 500 do
    n = n + redis.call('DEL', unpack(members, j, math.min(j + 499, #members)))
  end
  redis.call('DEL', KEYS[i])
end
redis.call('INCR', KEYS[1])
return n
"""


def _token() -> str:
    return os.urandom(9).hex()


class RedisCache:
    """`url`: redis://[user:password@]host:port/db (rediss:// for TLS). `prefix`: what every
    key starts with. `timeout_s`: how long one call may take (connecting included) before the
    request goes to the handler. `retry_s`: how long an unreachable Redis is left alone."""

    name = "redis"

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "opscope:cache:",
        timeout_s: float = 0.25,
        retry_s: float = 1.0,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self.shown = redact(url)
        self._sync: Any = None
        self._async: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scripts: dict[str, Any] = {}
        self._ascripts: dict[str, Any] = {}
        self._make = threading.Lock()
        self._state = threading.Lock()
        #: monotonic time until which Redis is not tried again; 0: up
        self.down_until = 0.0
        self.down = False
        self.epoch_key = prefix + "epoch"

    # --- clients -------------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        return {
            "socket_timeout": self.timeout_s,
            "socket_connect_timeout": self.timeout_s,
            "health_check_interval": 0,
        }

    def sync_client(self) -> Any:
        if self._sync is None:
            import redis

            with self._make:
                if self._sync is None:
                    client = redis.Redis.from_url(self.url, **self._options())
                    self._scripts = {
                        name: client.register_script(text) for name, text in _SCRIPTS.items()
                    }
                    self._sync = client
        return self._sync

    def async_client(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._async is None or self._loop is not loop:
            import redis.asyncio

            client = redis.asyncio.Redis.from_url(self.url, **self._options())
            self._ascripts = {name: client.register_script(text) for name, text in _SCRIPTS.items()}
            self._async, self._loop = client, loop
        return self._async

    # --- outages ---------------------------------------------------------------------------

    def _check(self) -> None:
        if self.down_until and time.monotonic() < self.down_until:
            raise BackendUnavailable(f"redis at {self.shown} is unavailable")

    def _failed(self, exc: BaseException) -> BackendUnavailable:
        self.down_until = time.monotonic() + self.retry_s
        with self._state:  # threads of a WSGI app fail together: one of them logs
            first, self.down = not self.down, True
        if first:
            log.warning(
                "opscope: cache backend redis at %s is unavailable (%s): requests go to the "
                "handlers until it answers again",
                self.shown,
                redact(first_line(exc)) or type(exc).__name__,
            )
        return BackendUnavailable(f"redis at {self.shown}: {first_line(exc)}")

    def _ok(self) -> None:
        if not self.down:
            return
        with self._state:
            back, self.down = self.down, False
            self.down_until = 0.0
        if back:
            log.warning("opscope: cache backend redis at %s is back", self.shown)

    # --- sync --------------------------------------------------------------------------------

    def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        import redis

        self._check()
        try:
            result = fn(*args, **kwargs)
        except (redis.RedisError, OSError) as exc:
            raise self._failed(exc) from None
        self._ok()
        return result

    def get(self, key: str) -> Entry | None:
        client = self.sync_client()
        blob = self._run(client.get, self.prefix + "e:" + key)
        return None if blob is None else decode(blob)

    def get_or_lock(self, key: str, timeout_s: float) -> tuple[Entry | None, Lock]:
        self.sync_client()
        token = _token()
        blob, locked, epoch = self._run(
            self._scripts["get_or_lock"],
            keys=self._keys(key),
            args=[token, int(timeout_s * 1000)],
        )
        return self._claimed(blob, locked, epoch, token)

    def lock(self, key: str, timeout_s: float) -> Lock | None:
        self.sync_client()
        token = _token()
        epoch = self._run(
            self._scripts["lock"],
            keys=[self.prefix + "l:" + key, self.epoch_key],
            args=[token, int(timeout_s * 1000)],
        )
        return None if epoch < 0 else Lock(token, int(epoch))

    def put(self, key: str, entry: Entry, tags: Iterable[str], lock: Lock | None) -> bool:
        self.sync_client()
        keys, args = self._put_args(key, entry, tags, lock)
        return bool(self._run(self._scripts["put"], keys=keys, args=args))

    def unlock(self, key: str, lock: Lock) -> None:
        self.sync_client()
        self._run(self._scripts["unlock"], keys=[self.prefix + "l:" + key], args=[lock.token])

    def invalidate(self, tags: Iterable[str] = (), paths: Iterable[str] = ()) -> int:
        """Drop the entries with any of `tags`, or of any of `paths`; returns how many. Raises
        BackendUnavailable when Redis cannot be reached."""
        self.sync_client()
        keys = self._invalidate_keys(tags, paths)
        return int(self._run(self._scripts["invalidate"], keys=keys))

    # --- async -------------------------------------------------------------------------------

    async def _arun(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        import redis

        self._check()
        try:
            result = await fn(*args, **kwargs)
        except (redis.RedisError, OSError) as exc:
            raise self._failed(exc) from None
        self._ok()
        return result

    async def aget(self, key: str) -> Entry | None:
        client = self.async_client()
        blob = await self._arun(client.get, self.prefix + "e:" + key)
        return None if blob is None else decode(blob)

    async def aget_or_lock(self, key: str, timeout_s: float) -> tuple[Entry | None, Lock]:
        self.async_client()
        token = _token()
        blob, locked, epoch = await self._arun(
            self._ascripts["get_or_lock"],
            keys=self._keys(key),
            args=[token, int(timeout_s * 1000)],
        )
        return self._claimed(blob, locked, epoch, token)

    async def alock(self, key: str, timeout_s: float) -> Lock | None:
        self.async_client()
        token = _token()
        epoch = await self._arun(
            self._ascripts["lock"],
            keys=[self.prefix + "l:" + key, self.epoch_key],
            args=[token, int(timeout_s * 1000)],
        )
        return None if epoch < 0 else Lock(token, int(epoch))

    async def aput(self, key: str, entry: Entry, tags: Iterable[str], lock: Lock | None) -> bool:
        self.async_client()
        keys, args = self._put_args(key, entry, tags, lock)
        return bool(await self._arun(self._ascripts["put"], keys=keys, args=args))

    async def aunlock(self, key: str, lock: Lock) -> None:
        self.async_client()
        await self._arun(
            self._ascripts["unlock"], keys=[self.prefix + "l:" + key], args=[lock.token]
        )

    async def ainvalidate(self, tags: Iterable[str] = (), paths: Iterable[str] = ()) -> int:
        self.async_client()
        keys = self._invalidate_keys(tags, paths)
        return int(await self._arun(self._ascripts["invalidate"], keys=keys))

    # --- shared ------------------------------------------------------------------------------

    def _keys(self, key: str) -> list[str]:
        return [self.prefix + "e:" + key, self.prefix + "l:" + key, self.epoch_key]

    @staticmethod
    def _claimed(blob: bytes, locked: int, epoch: int, token: str) -> tuple[Entry | None, Lock]:
        entry = decode(blob) if blob else None
        if locked:
            return entry, Lock(token, int(epoch))
        return entry, Lock("", int(epoch), held=False)

    def _put_args(
        self, key: str, entry: Entry, tags: Iterable[str], lock: Lock | None
    ) -> tuple[list[str], list[Any]]:
        px = max(int((entry.stale_until - entry.stored_at) * 1000), 1)
        keys = [*self._keys(key), *(self.prefix + "t:" + t for t in tags)]
        epoch = lock.epoch if lock is not None else -1
        token = lock.token if lock is not None and lock.held else ""
        return keys, [entry.encode(), px, token, epoch]

    def _invalidate_keys(self, tags: Iterable[str], paths: Iterable[str]) -> list[str]:
        wanted = [*tags, *tags_of_paths(paths)]
        return [self.epoch_key, *(self.prefix + "t:" + t for t in wanted)]

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    async def aclose(self) -> None:
        if self._async is not None:
            await self._async.aclose()
            self._async = None


_SCRIPTS = {
    "get_or_lock": _GET_OR_LOCK,
    "lock": _LOCK,
    "put": _PUT,
    "unlock": _UNLOCK,
    "invalidate": _INVALIDATE,
}

"""Web APIs: instrumentation for ASGI and WSGI apps (`Instrument`, `InstrumentWSGI`), the
response cache (`ResponseCache`, `ResponseCacheWSGI`, with `CacheRule`, `MemoryCache` and
`RedisCache`), the endpoint probe, access-log analysis and `analyze_api`.

Importing this package needs neither Starlette nor Flask (nor redis-py): each framework is
read only when an app of it is instrumented. The middleware classes load on first use, so the
CLI, which imports the area's plugin, does not pay for prometheus_client."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opscope.api.asgi import Instrument
    from opscope.api.cache.asgi import ResponseCache
    from opscope.api.cache.memory import MemoryCache
    from opscope.api.cache.redisstore import RedisCache
    from opscope.api.cache.rules import CacheRule
    from opscope.api.cache.wsgi import ResponseCacheWSGI
    from opscope.api.wsgi import InstrumentWSGI

__all__ = [
    "CacheRule",
    "Instrument",
    "InstrumentWSGI",
    "MemoryCache",
    "RedisCache",
    "ResponseCache",
    "ResponseCacheWSGI",
]

_WHERE = {
    "Instrument": "opscope.api.asgi",
    "InstrumentWSGI": "opscope.api.wsgi",
    "ResponseCache": "opscope.api.cache.asgi",
    "ResponseCacheWSGI": "opscope.api.cache.wsgi",
    "CacheRule": "opscope.api.cache.rules",
    "MemoryCache": "opscope.api.cache.memory",
    "RedisCache": "opscope.api.cache.redisstore",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'opscope.api' has no attribute {name!r}")
    return getattr(import_module(module), name)

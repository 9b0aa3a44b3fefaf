"""The vocabulary every module of opscope.api shares, as `starlette.types` gives Starlette's:
ASGI's scope, messages and callables, and WSGI's environ and start_response. Plain aliases,
so that nothing here needs Starlette or Flask installed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from types import TracebackType
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

#: what the middleware reads time from (seconds, monotonic); tests hand in a fixed one
Timer = Callable[[], float]

"""Serialization time: turning the handler's return value into the response body, timed apart
from the handler.

- FastAPI: `fastapi.routing.serialize_response` (response-model validation and encoding,
  pydantic's JSON fast path included), which the request handler looks up in its module on
  every call, and the construction of every Starlette `Response` made during a request
  (`Response.__init__` renders the body: `JSONResponse`'s json.dumps, any subclass's
  `render`, an `ORJSONResponse`'s too). A response the handler builds itself counts as well:
  rendering it is serialization. FastAPI's time runs from the start of serialize_response
  to the end of the rendering that follows: one span, two clock readings.
- Flask: the app's JSON provider's `response` (what `jsonify` and returning a dict or list
  call), wrapped on that app's provider instance, whatever its class (an orjson provider
  too).

Both are hooked once; outside a request they cost one context-variable read.
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
from collections.abc import Callable
from typing import Any

from opscope.api.record import CURRENT

_lock = threading.Lock()
_installed: set[str] = set()
_MARK = "__opscope_wrapped__"


def timed(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def serialize(*args: Any, **kwargs: Any) -> Any:
        record = CURRENT.get()
        if record is None or record.in_serialization:
            return method(*args, **kwargs)
        record.in_serialization = True
        timer = record.timer
        start = timer()
        try:
            return method(*args, **kwargs)
        finally:
            record.in_serialization = False
            record.serialization_time += timer() - start

    setattr(serialize, _MARK, True)
    return serialize


def _open_span() -> None:
    record = CURRENT.get()
    if record is not None and not record.serializing:
        record.serializing = record.timer()


#: the forwarding function span_start makes: `method`'s own parameters, passed on as given
_FORWARD = """
def serialize({params}):
    record = _current.get()  # _open_span, inlined
    if record is not None and not record.serializing:
        record.serializing = record.timer()
    return _method({arguments})
"""

#: the Response.__init__ timed_response_init makes, the same way (its body: response_init's)
_RESPONSE_INIT = """
def response_init({params}):
    if content is None:
        return _method({arguments})
    record = _current.get()
    if record is None or record.in_serialization:
        return _method({arguments})
    record.in_serialization = True
    timer = record.timer
    start = record.serializing or timer()
    try:
        return _method({arguments})
    finally:
        record.in_serialization = False
        record.serializing = 0.0
        record.serialization_time += timer() - start
"""


def _with_signature(
    method: Callable[..., Any], source: str, name: str, namespace: dict[str, Any]
) -> Callable[..., Any] | None:
    """`source` (a function called `name` that calls `_method`) made with `method`'s own
    parameters, their defaults the same objects, and passing them on positionally where
    they allow it: no `*args`/`**kwargs` packed and unpacked per call. None for a
    signature with *args or **kwargs (or a name that could clash with the wrapper's own)."""
    parameters = list(inspect.signature(method).parameters.values())
    plain = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    if not all(p.kind in plain and not p.name.startswith("_") for p in parameters):
        return None
    if any(p.name in ("record", "timer", "start") for p in parameters):
        return None
    namespace = {**namespace, "_method": method}
    params: list[str] = []
    arguments: list[str] = []
    for p in parameters:
        keyword = p.kind is inspect.Parameter.KEYWORD_ONLY
        if keyword and "*" not in params:
            params.append("*")
        if p.default is inspect.Parameter.empty:
            params.append(p.name)
        else:
            namespace[f"_default_{p.name}"] = p.default
            params.append(f"{p.name}=_default_{p.name}")
        arguments.append(f"{p.name}={p.name}" if keyword else p.name)
    # the names are the parameters of a function already compiled: identifiers, no input
    exec(source.format(params=", ".join(params), arguments=", ".join(arguments)), namespace)
    wrapper: Callable[..., Any] = functools.update_wrapper(namespace[name], method)
    setattr(wrapper, _MARK, True)
    return wrapper


def span_start(method: Callable[..., Any]) -> Callable[..., Any]:
    """FastAPI's `serialize_response` (a coroutine function) opens the request's
    serialization span, and the Response rendered next closes it (timed_response_init).
    A plain function that returns the coroutine, not a coroutine of its own: FastAPI awaits
    it at once, and the response it renders follows, so one clock reading here and one at
    the end of the rendering time both, without a second coroutine per request.

    FastAPI passes its eleven arguments by keyword: a `**kwargs` wrapper would pack them in
    a dict and unpack them again, about 0.6 µs a request, more than the rest of the hook.
    So the wrapper is made with serialize_response's own signature (its defaults the same
    objects), whatever FastAPI's version has; the generic one is for a signature with
    *args or **kwargs (or a name that could clash with the wrapper's own)."""
    made = _with_signature(method, _FORWARD, "serialize", {"_current": CURRENT})
    return made if made is not None else _span_start_generic(method)


def _span_start_generic(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def serialize(*args: Any, **kwargs: Any) -> Any:
        _open_span()
        return method(*args, **kwargs)

    setattr(serialize, _MARK, True)
    return serialize


def timed_response_init(init: Callable[..., Any]) -> Callable[..., Any]:
    """`Response.__init__`, timed when it has content to render (FastAPI also makes an
    empty Response per request for its dependencies' headers, which renders nothing), from
    the start of the span serialize_response opened if there is one. Made with the
    signature of the `__init__` it wraps, as span_start's is (twice a FastAPI request);
    the generic one when that has no `content` parameter or takes *args or **kwargs."""
    if "content" in inspect.signature(init).parameters:
        made = _with_signature(init, _RESPONSE_INIT, "response_init", {"_current": CURRENT})
        if made is not None:
            return made
    return _timed_response_init_generic(init)


def _timed_response_init_generic(init: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(init)
    def response_init(self: Any, content: Any = None, *args: Any, **kwargs: Any) -> None:
        if content is None:
            init(self, content, *args, **kwargs)
            return
        record = CURRENT.get()
        if record is None or record.in_serialization:
            init(self, content, *args, **kwargs)
            return
        record.in_serialization = True
        timer = record.timer
        start = record.serializing or timer()
        try:
            init(self, content, *args, **kwargs)
        finally:
            record.in_serialization = False
            record.serializing = 0.0
            record.serialization_time += timer() - start

    setattr(response_init, _MARK, True)
    return response_init


def install_asgi() -> None:
    """Hook Starlette's responses and FastAPI's serializer, if the process has them."""
    with _lock:
        starlette = sys.modules.get("starlette.responses")
        if "starlette" not in _installed and starlette is not None:
            response = starlette.Response
            if not getattr(response.__init__, _MARK, False):
                response.__init__ = timed_response_init(response.__init__)
            _installed.add("starlette")
        routing = sys.modules.get("fastapi.routing")
        if "fastapi" not in _installed and routing is not None:
            serialize = getattr(routing, "serialize_response", None)
            if serialize is not None and not getattr(serialize, _MARK, False):
                setattr(routing, "serialize_response", span_start(serialize))  # noqa: B010
            _installed.add("fastapi")


def install_flask(app: Any) -> bool:
    """Hook a Flask app's JSON provider; False when `app` has none."""
    provider = getattr(app, "json", None)
    response = getattr(provider, "response", None)
    if response is None:
        return False
    if not getattr(response, _MARK, False):
        # an attribute of the instance, so only this app's provider is wrapped
        provider.response = timed(response)  # type: ignore[union-attr]
    return True

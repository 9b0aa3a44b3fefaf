"""Route templates: the label every metric carries, bounded by what the app declares.

- Starlette and FastAPI: the router leaves the matched route in the request's scope
  (`scope["route"]`, Starlette 0.36+ and FastAPI's own). A mounted sub-app's routes are known
  only relative to their mount, whose own match shows as the growth of `root_path`: the mount
  templates are found again by matching that prefix against the routers' `Mount`s, once per
  (route, prefix) (cached). The server's own `root_path` (uvicorn --root-path, a proxy's
  prefix) is not part of the template: it is where the app lives, not one of its routes.
- Flask: the request's `url_rule` (werkzeug leaves the request in the environ while the
  response starts); its `rule` is the template, blueprint prefixes included.
- Anything that no route matched (404s, a redirect of a trailing slash, a middleware that
  answered first) shares one label, UNMATCHED, so random paths add no label values.

Nothing here imports Starlette or Flask: both are read by duck typing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opscope.api.types import Environ, Scope

UNMATCHED = "<unmatched>"
#: past `max_routes` distinct templates (a guard: apps declare far fewer) new ones share this
OTHER = "<other>"
#: where the response cache leaves the template of the rule that answered a request itself
CACHED_ROUTE = "opscope.route"

#: http_request_method values: the standard methods (OpenTelemetry's list), else _OTHER
METHODS = {
    m: m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
}
OTHER_METHOD = "_OTHER"

_MOUNTED_CACHE_SIZE = 4096
_mounted: dict[tuple[int, str], tuple[Any, str]] = {}
#: a route's own template by id (routes are not hashable); the route is kept with it, so its
#: id cannot be reused by another object while the entry exists. The ASGI middleware reads it
#: inline, the common case of starlette_route
PLAIN_TEMPLATES: dict[int, tuple[Any, str]] = {}


def _is_mount(route: Any) -> bool:
    return hasattr(route, "path_regex") and hasattr(route, "routes") and hasattr(route, "app")


def _own_template(route: Any) -> str | None:
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return None
    # a mounted app that is not a router (a plain ASGI app, WSGIMiddleware) ends here
    return path + "/{path:path}" if _is_mount(route) else path


def _find(routes: Sequence[Any], path: str, target: Any, depth: int = 0) -> str | None:
    """The template of `target` below `routes`, matching `path` against the mounts on the
    way."""
    for route in routes:
        if route is target:
            return _own_template(route)
    if depth > 8:
        return None
    for route in routes:
        if not _is_mount(route):
            continue
        m = route.path_regex.match(path)
        if m is None:
            continue
        rest = "/" + m.groupdict().get("path", "")
        inner = _find(route.routes, rest, target, depth + 1)
        if inner is not None:
            return str(route.path) + inner
    return None


def starlette_route(scope: Scope, root_path: str) -> str:
    """The template of the route Starlette's router matched for this request; `root_path`
    is the scope's root_path as the server gave it, before any mount."""
    route = scope.get("route")
    if route is None:
        # answered from the response cache, before any router ran
        return scope.get(CACHED_ROUTE) or UNMATCHED
    mounted = scope.get("root_path", "")
    if len(mounted) == len(root_path):
        known = PLAIN_TEMPLATES.get(id(route))
        if known is not None and known[0] is route:
            return known[1]
        template = _own_template(route) or UNMATCHED
        if len(PLAIN_TEMPLATES) < _MOUNTED_CACHE_SIZE:
            PLAIN_TEMPLATES[id(route)] = (route, template)
        return template
    key = (id(route), mounted[len(root_path) :])
    cached = _mounted.get(key)
    if cached is not None and cached[0] is route:
        return cached[1]
    router = scope.get("router")
    path = scope.get("path", "")
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    found = _find(getattr(router, "routes", ()), path, route) if router is not None else None
    template = found or _own_template(route) or UNMATCHED
    if len(_mounted) < _MOUNTED_CACHE_SIZE:
        _mounted[key] = (route, template)
    return template


def flask_route(environ: Environ) -> str | None:
    """The url_rule of the Flask (werkzeug) request being answered, UNMATCHED when none
    matched, None when the app is not a werkzeug one."""
    request = environ.get("werkzeug.request")
    if request is None:
        return None
    rule = getattr(request, "url_rule", None)
    return str(rule.rule) if rule is not None else UNMATCHED

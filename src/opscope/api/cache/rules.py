"""Cache rules: which route templates are cached, for how long, and what tells two requests
of a route apart (the key).

A rule is declared per route template, written as the app writes it: Starlette and FastAPI
(`/products/{product_id}`, `{name:int}`, `{rest:path}`) or Flask (`/products/<int:product_id>`,
`<path:rest>`). The templates are compiled once into regular expressions, so a request's rule
is found before the app routes it; the route the app actually chose is checked when it
answers, and a request a rule matched but another route answered is not cached.

The key of a request is the route template, the Host and mount point, the path (so every path
parameter), the query parameters sorted (all of them, or only those the rule lists) and the
values of the request headers the rule varies on. It is hashed: header values (an
Authorization header when a rule caches per user) never appear in a key.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

#: headers that carry a user's credentials: a request with one is never answered from, or
#: stored in, an entry others can be served, unless its rule varies on that header
CREDENTIALS = frozenset(("authorization", "cookie"))

_STARLETTE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?\}")
_FLASK = re.compile(r"<(?:([a-z]+)(?:\(([^)]*)\))?:)?([A-Za-z_][A-Za-z0-9_]*)>")
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_CONVERTERS = {
    "str": r"[^/]+",
    "string": r"[^/]+",
    "int": r"[0-9]+",
    "float": r"[0-9]+(?:\.[0-9]+)?",
    "path": r".*",
    "uuid": _UUID,
    "default": r"[^/]+",
}


def compile_template(template: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """The regular expression a template's paths match, and its parameters' names.

    Raises ValueError for a converter neither Starlette nor werkzeug has."""
    if not template.startswith("/"):
        raise ValueError(f"route template {template!r} does not start with /")
    out: list[str] = []
    names: list[str] = []
    pos = 0
    pattern = _FLASK if "<" in template else _STARLETTE
    for m in pattern.finditer(template):
        out.append(re.escape(template[pos : m.start()]))
        if pattern is _STARLETTE:
            name, conv = m.group(1), m.group(2) or "str"
            regex = _CONVERTERS.get(conv)
        else:
            conv, args, name = m.group(1) or "default", m.group(2), m.group(3)
            if conv == "any":
                choices = [a.strip().strip("'\"") for a in (args or "").split(",") if a.strip()]
                regex = "(?:" + "|".join(re.escape(c) for c in choices) + ")"
            else:
                # werkzeug's path matches at least one character, and no leading slash
                regex = r"[^/].*?" if conv == "path" else _CONVERTERS.get(conv)
        if regex is None:
            raise ValueError(f"route template {template!r}: unknown converter {conv!r}")
        out.append(f"(?P<{name}>{regex})")
        names.append(name)
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out)), tuple(names)


@dataclass(frozen=True)
class CacheRule:
    """How one route template is cached.

    `ttl`: seconds an answer is served from the cache (a shorter `max-age` or `s-maxage` of
    the response wins). `vary`: request headers whose values are part of the key (add
    `authorization` to cache per user: such entries are never shared and are marked
    `private`). `query`: the query parameters that are part of the key (None: all of them,
    sorted; the others are ignored, so list only those the handler reads). `tags`: names to
    invalidate entries by, `{param}` replaced by the path parameter (`product:{product_id}`).
    `stale_while_revalidate`: seconds past `ttl` during which the old answer is served at once
    while one request refreshes it in the background."""

    ttl: float
    vary: tuple[str, ...] = ()
    query: tuple[str, ...] | None = None
    tags: tuple[str, ...] = ()
    stale_while_revalidate: float = 0.0

    def __post_init__(self) -> None:
        if not self.ttl > 0:
            raise ValueError(f"ttl must be more than 0 seconds, not {self.ttl!r}")
        if self.stale_while_revalidate < 0:
            raise ValueError("stale_while_revalidate must be 0 or more seconds")
        for name, value in (("vary", self.vary), ("tags", self.tags)):
            if isinstance(value, str):
                raise ValueError(f"{name} is a tuple of strings, not one string: ({value!r},)")
        if isinstance(self.query, str):
            raise ValueError(f"query is a tuple of names, not one string: ({self.query!r},)")
        object.__setattr__(self, "vary", tuple(sorted({v.strip().lower() for v in self.vary})))


@dataclass(frozen=True)
class CompiledRule:
    template: str
    rule: CacheRule
    regex: re.Pattern[str]
    params: tuple[str, ...]
    #: the vary headers as ASGI names (bytes) and as WSGI environ keys
    vary_bytes: frozenset[bytes] = field(default_factory=frozenset)
    vary_environ: tuple[tuple[str, str], ...] = ()
    #: the credential headers this rule keys on (then its entries are per user)
    per_user: frozenset[str] = field(default_factory=frozenset)
    query: frozenset[bytes] | None = None

    @property
    def ttl(self) -> float:
        return self.rule.ttl

    def tags_for(self, params: Mapping[str, str]) -> list[str]:
        out = []
        for tag in self.rule.tags:
            for name in self.params:
                tag = tag.replace("{" + name + "}", params.get(name, ""))
            out.append(tag)
        return out


_CONVERTER_SPEC = re.compile(
    r"\{([A-Za-z_][A-Za-z0-9_]*):[a-z]+\}|<[a-z]+(?:\([^)]*\))?:([A-Za-z_][A-Za-z0-9_]*)>"
)


def same_route(template: str, actual: str) -> bool:
    """Whether the route the app answered with is the rule's, converters aside
    (`/items/{item_id:int}` is FastAPI's `/items/{item_id}`)."""
    if template == actual:
        return True
    return _bare(template) == _bare(actual)


def _bare(template: str) -> str:
    return _CONVERTER_SPEC.sub(
        lambda m: "{" + m.group(1) + "}" if m.group(1) else "<" + m.group(2) + ">", template
    )


def compile_rule(template: str, rule: CacheRule | float) -> CompiledRule:
    if not isinstance(rule, CacheRule):
        rule = CacheRule(ttl=float(rule))
    regex, params = compile_template(template)
    for tag in rule.tags:
        for ref in re.findall(r"\{([^}]*)\}", tag):
            if ref not in params:
                raise ValueError(f"rule {template!r}: tag {tag!r} names no path parameter {ref!r}")
    return CompiledRule(
        template=template,
        rule=rule,
        regex=regex,
        params=params,
        vary_bytes=frozenset(v.encode("latin-1") for v in rule.vary),
        vary_environ=tuple((v, "HTTP_" + v.upper().replace("-", "_")) for v in rule.vary),
        per_user=frozenset(v for v in rule.vary if v in CREDENTIALS),
        query=None if rule.query is None else frozenset(q.encode() for q in rule.query),
    )


class RuleSet:
    """The rules of one middleware, found by path. Templates without parameters are looked up
    in a dict; the others are tried in the order given, after one `startswith` against all
    their literal prefixes, so a path no rule can match costs a dict miss and that call."""

    def __init__(self, rules: Mapping[str, CacheRule | float]) -> None:
        compiled = [compile_rule(t, r) for t, r in rules.items()]
        self.rules = compiled
        self.static = {c.template: c for c in compiled if not c.params}
        self.dynamic = [c for c in compiled if c.params]
        self.prefixes = tuple(_literal_prefix(c.template) for c in self.dynamic)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def match(self, path: str) -> tuple[CompiledRule, dict[str, str]] | None:
        rule = self.static.get(path)
        if rule is not None:
            return rule, {}
        if not self.prefixes or not path.startswith(self.prefixes):
            return None
        for rule in self.dynamic:
            m = rule.regex.fullmatch(path)
            if m is not None:
                return rule, m.groupdict()
        return None


def _literal_prefix(template: str) -> str:
    cut = min((i for i in (template.find("{"), template.find("<")) if i >= 0), default=-1)
    return template if cut < 0 else template[:cut]


def sorted_query(query: bytes, only: frozenset[bytes] | None) -> bytes:
    """The query string with its parameters sorted (and only those named, if `only`)."""
    if not query:
        return b""
    parts = query.split(b"&")
    if only is not None:
        parts = [p for p in parts if p.split(b"=", 1)[0] in only]
    elif len(parts) == 1:
        return query
    return b"&".join(sorted(p for p in parts if p))


def entry_key(
    rule: CompiledRule, path: str, query: bytes, vary: Sequence[bytes], host: bytes = b""
) -> str:
    """The hex key of a request: a hash, so credentials in `vary` values never show. `host`
    is the Host and the mount point the app answers under: one app serving several hosts
    (tenants by domain) or mounted twice never answers one with the other's entries."""
    h = hashlib.blake2b(digest_size=16)
    h.update(rule.template.encode())
    h.update(b"\0")
    h.update(host)
    h.update(b"\0")
    h.update(path.encode("utf-8", "surrogateescape"))
    h.update(b"\0")
    h.update(query)
    for value in vary:
        h.update(b"\0")
        h.update(value)
    return h.hexdigest()


def path_tags(path: str, query: bytes) -> list[str]:
    """The implicit tags of every entry: its path (every query and variant of it) and its
    path with the query as the key has it."""
    tags = ["path:" + path]
    if query:
        tags.append("url:" + path + "?" + query.decode("latin-1"))
    return tags


def tags_of_paths(paths: Iterable[str]) -> list[str]:
    """The tags `invalidate(paths=...)` drops: a path alone drops every query and variant of
    it; a path with a query drops that query (its parameters sorted)."""
    out = []
    for p in paths:
        path, sep, query = p.partition("?")
        if sep and query:
            out.append("url:" + path + "?" + sorted_query(query.encode(), None).decode())
        else:
            out.append("path:" + path)
    return out


class CacheRequest:
    """What the cache reads of one request, in one pass over its headers (ASGI and WSGI
    alike)."""

    __slots__ = ("credentials", "if_none_match", "key", "params", "path", "query", "rule")

    def __init__(self, rule: CompiledRule, params: dict[str, str], path: str) -> None:
        self.rule = rule
        self.params = params
        self.path = path
        self.credentials = False
        self.if_none_match: bytes | None = None
        self.query = b""
        self.key = ""

    def tags(self) -> list[str]:
        return [*self.rule.tags_for(self.params), *path_tags(self.path, self.query)]

"""Access logs: nginx's combined and JSON formats, gunicorn's and uvicorn's, parsed into
requests and aggregated by endpoint, raw paths folded into templates so that `/orders/17` and
`/orders/42` are one endpoint.

Latency comes from the line when the format carries it: a last field that is a number (nginx
`$request_time` in seconds with a decimal point, gunicorn's `%(L)s` too; gunicorn's
`%(D)s` and Apache's `%D`, integers, in microseconds; `rt=0.123` style also read), or a JSON
log's `request_time` (seconds), `duration_ms`, `duration` (seconds). uvicorn's access log has
none: from it only counts and error rates are known.

Compressed files (gzip, bzip2, xz, zstd) are read as the server-log reader reads them. A
line longer than MAX_LINE is skipped and counted; memory is bounded by the number of distinct
templates (MAX_TEMPLATES, then OTHER) whatever the size of the input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from opscope.api.endpoints import Endpoint, Latency
from opscope.api.latency import LogHistogram
from opscope.api.routes import OTHER, UNMATCHED
from opscope.db.logs.reader import LogInputError, open_input, read_blocks

MAX_LINE = 64 << 10
MAX_TEMPLATES = 10_000
#: distinct GET/HEAD targets remembered to count repeats (then new ones are not followed)
MAX_TRACKED_TARGETS = 100_000
FORMATS = ("combined", "gunicorn", "uvicorn", "json")

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_HEX = re.compile(r"^[0-9a-fA-F]{16,}$")
_NUMBER = re.compile(r"^\d+$")


def fold_segment(segment: str) -> str:
    if _NUMBER.match(segment):
        return "{id}"
    if len(segment) == 36 and _UUID.match(segment):
        return "{uuid}"
    if _HEX.match(segment) and any(c.isdigit() for c in segment):
        return "{hash}"
    return segment


def fold_path(target: str) -> str:
    """A request target as a route template: no query or fragment, numeric ids, UUIDs and
    hex hashes (16 hex digits or more, one a digit at least) replaced by placeholders."""
    path = target.split("?", 1)[0].split("#", 1)[0]
    if "://" in path:  # an absolute-form target (a proxy request)
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    if not path.startswith("/"):
        return UNMATCHED  # "*" of OPTIONS, or garbage
    parts = [fold_segment(p) for p in path.split("/")[1:] if p]
    return "/" + "/".join(parts) + ("/" if path.endswith("/") and parts else "")


@dataclass(frozen=True)
class LogRequest:
    method: str
    target: str
    status: int
    #: seconds, when the format has it
    duration: float | None = None


_QUOTED = r'"((?:[^"\\]|\\.)*)"'
_COMBINED = re.compile(
    r"^\S+ \S+ (?:\S+|\"[^\"]*\") \[[^\]]+\] " + _QUOTED + r" (\d{3}) (?:\d+|-)(.*)$"
)
_UVICORN = re.compile(
    r'^(?:[A-Z]+:\s+)?(?:\[[^\]]*\]\s+)?\S+ - "([A-Z]+) (\S+) HTTP/[\d.]+" (\d{3})\b'
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TRAILING_TIME = re.compile(r"(?:^|\s)(?:(?:rt|request_time|rtime)=)?\"?(\d+(?:\.\d+)?)\"?\s*$")


def _duration(rest: str) -> float | None:
    m = _TRAILING_TIME.search(rest)
    if m is None:
        return None
    text = m.group(1)
    # a decimal point: seconds (nginx $request_time, gunicorn %(L)s); an integer:
    # microseconds (gunicorn %(D)s, Apache %D)
    return float(text) if "." in text else int(text) / 1e6


def parse_combined(line: str) -> LogRequest | None:
    m = _COMBINED.match(line)
    if m is None:
        return None
    request, status, rest = m.groups()
    parts = request.split(" ")
    if len(parts) < 2:
        return None
    # after the status and size: "referer" "agent", then what the format added
    rest = re.sub(r"^\s*" + _QUOTED + r"\s+" + _QUOTED, "", rest, count=1)
    return LogRequest(parts[0], parts[1], int(status), _duration(rest))


def parse_uvicorn(line: str) -> LogRequest | None:
    m = _UVICORN.match(_ANSI.sub("", line))
    if m is None:
        return None
    method, target, status = m.groups()
    return LogRequest(method, target, int(status))


_JSON_TARGET = ("request_uri", "uri", "path", "url")
_JSON_METHOD = ("request_method", "method")


def parse_json(line: str) -> LogRequest | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    target = next((data[k] for k in _JSON_TARGET if isinstance(data.get(k), str)), None)
    method = next((data[k] for k in _JSON_METHOD if isinstance(data.get(k), str)), None)
    request = data.get("request")
    if (target is None or method is None) and isinstance(request, str):
        parts = request.split(" ")
        if len(parts) >= 2:
            method, target = method or parts[0], target or parts[1]
    try:
        status = int(data.get("status", 0))
    except (TypeError, ValueError):
        return None
    if target is None or not 100 <= status <= 599:
        return None
    duration: float | None = None
    for key, scale in (("request_time", 1.0), ("duration_ms", 1e-3), ("duration", 1.0)):
        value = data.get(key)
        try:
            if value not in (None, "", "-"):
                duration = float(value) * scale
                break
        except (TypeError, ValueError):
            continue
    return LogRequest(method or "GET", target, status, duration)


PARSERS = {
    "combined": parse_combined,
    "gunicorn": parse_combined,
    "uvicorn": parse_uvicorn,
    "json": parse_json,
}


def detect(line: str) -> str | None:
    stripped = line.lstrip()
    if stripped.startswith("{") and parse_json(stripped) is not None:
        return "json"
    if parse_combined(line) is not None:
        return "combined"
    if parse_uvicorn(line) is not None:
        return "uvicorn"
    return None


def lines(path: str) -> Iterator[str | None]:
    """The lines of `path`, decompressed; None for a line past MAX_LINE (skipped)."""
    stream, stats = open_input(path)
    try:
        pending = b""
        # the start of a line longer than MAX_LINE was dropped: drop up to its newline
        skipping = False
        for block in read_blocks(stream, stats, 1 << 20):
            parts = block.split(b"\n")
            parts[0] = pending + parts[0]
            pending = parts.pop()
            for raw in parts:
                if skipping:
                    skipping = False
                    continue
                if len(raw) > MAX_LINE:
                    yield None
                    continue
                yield raw.decode("utf-8", "replace").rstrip("\r")
            if len(pending) > MAX_LINE:
                if not skipping:
                    yield None
                skipping, pending = True, b""
        if pending and not skipping:
            yield pending.decode("utf-8", "replace")
        if stats.read_error:
            raise LogInputError(f"{path}: {stats.read_error}")
    finally:
        stream.close()


@dataclass
class LogAggregate:
    """Requests of one or more access logs, by folded template."""

    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    histograms: dict[str, LogHistogram] = field(default_factory=dict)
    #: only-404 templates are folded into UNMATCHED at the end
    non_404: set[str] = field(default_factory=set)
    lines: int = 0
    parsed: int = 0
    skipped_long: int = 0
    formats: dict[str, str] = field(default_factory=dict)
    has_latency: bool = False
    #: (template, path, sorted query) of the 2xx GET/HEAD requests seen, for repeat rates
    targets: set[tuple[str, str]] = field(default_factory=set)

    def add(self, request: LogRequest) -> None:
        template = fold_path(request.target)
        e = self.endpoints.get(template)
        if e is None:
            if len(self.endpoints) >= MAX_TEMPLATES:
                template = OTHER
                e = self.endpoints.get(template)
            if e is None:
                e = self.endpoints[template] = Endpoint(route=template)
        e.requests += 1
        status = str(request.status)
        e.statuses[status] = e.statuses.get(status, 0.0) + 1
        if request.status >= 500:
            e.errors += 1
        if request.status != 404:
            self.non_404.add(template)
        e.methods.add(request.method)
        if request.method in ("GET", "HEAD"):
            e.reads += 1
            if 200 <= request.status < 300:
                e.reads_ok += 1
                self._repeat(e, template, request.target)
        if request.duration is not None:
            self.has_latency = True
            e.duration_s = (e.duration_s or 0.0) + request.duration
            hist = self.histograms.get(template)
            if hist is None:
                hist = self.histograms[template] = LogHistogram()
            hist.add(request.duration)

    def _repeat(self, e: Endpoint, template: str, target: str) -> None:
        """Count a request for a target answered before (its query parameters sorted)."""
        path, _, query = target.partition("?")
        if "&" in query:
            query = "&".join(sorted(query.split("&")))
        key = (template, path + "?" + query)
        if e.repeats is None:
            e.repeats, e.keys = 0.0, 0.0
        if key in self.targets:
            e.repeats += 1
        elif len(self.targets) < MAX_TRACKED_TARGETS:
            self.targets.add(key)
            e.keys = (e.keys or 0.0) + 1

    def finish(self) -> dict[str, Endpoint]:
        out: dict[str, Endpoint] = {}
        for template, e in self.endpoints.items():
            hist = self.histograms.get(template)
            if hist is not None:
                e.latency = Latency(samples=hist)
            if template not in self.non_404 and template != UNMATCHED:
                # never answered but 404: not a route, whatever its shape (a scan, a typo)
                into = out.setdefault(UNMATCHED, Endpoint(route=UNMATCHED))
                _merge_into(into, e)
                continue
            if template in out:
                _merge_into(out[template], e)
            else:
                out[template] = e
        return dict(sorted(out.items()))


def _merge_into(into: Endpoint, e: Endpoint) -> None:
    into.requests += e.requests
    into.errors += e.errors
    for k, v in e.statuses.items():
        into.statuses[k] = into.statuses.get(k, 0.0) + v
    into.methods |= e.methods
    into.reads += e.reads
    into.reads_ok += e.reads_ok
    if e.repeats is not None:
        into.repeats = (into.repeats or 0.0) + e.repeats
        into.keys = (into.keys or 0.0) + (e.keys or 0.0)
    if e.duration_s is not None:
        into.duration_s = (into.duration_s or 0.0) + e.duration_s
    if e.latency is not None and e.latency.samples is not None:
        if into.latency is None or into.latency.samples is None:
            into.latency = Latency(samples=LogHistogram())
        assert into.latency.samples is not None
        into.latency.samples.merge(e.latency.samples)


def read_logs(paths: Iterable[str], fmt: str = "auto") -> LogAggregate:
    """Aggregate the access logs at `paths`; `fmt` is one of FORMATS, or "auto" (each file's
    first parseable line decides). Raises LogInputError for a file that cannot be read or
    whose format cannot be told."""
    agg = LogAggregate()
    for path in paths:
        parser = PARSERS.get(fmt)
        chosen = fmt if parser is not None else None
        for line in lines(path):
            agg.lines += 1
            if line is None:
                agg.skipped_long += 1
                continue
            if not line.strip():
                continue
            if parser is None:
                chosen = detect(line)
                if chosen is None:
                    continue
                parser = PARSERS[chosen]
            request = parser(line)
            if request is not None:
                agg.parsed += 1
                agg.add(request)
        if chosen is None:
            raise LogInputError(
                f"{path}: no line in a known access-log format ({', '.join(FORMATS)})"
            )
        agg.formats[path] = chosen
    return agg

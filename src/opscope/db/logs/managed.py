"""Logs of managed PostgreSQL services, unwrapped into a form the parsers already read.

- Google Cloud SQL and AlloyDB export Cloud Logging entries, one JSON object a line, with
  the server's own line (log_line_prefix included) in `textPayload`, or its message in
  `jsonPayload.message`: the lines are taken out and read as stderr.
- Heroku's logplex drain writes `TIME app[postgres.PID]: [COLOR] [SEQ-LINE] sql_error_code =
  CODE [key="value" ...] LEVEL:  message`, an entry cut in lines numbered like syslog's: put
  back together as stderr lines with the prefix `%m [%p] %q%u@%d `.
- CloudNativePG's instance manager writes JSON lines; PostgreSQL's own records are those of
  logger "postgres", with the csvlog fields under `record`: written as PostgreSQL's jsonlog.
- Azure Database for PostgreSQL's diagnostic logs (category PostgreSQLLogs, to a storage
  account or an event hub) are JSON records with the message under `properties`, one a
  line or in a `records` array: written as jsonlog.
- Amazon RDS and Aurora write stderr with their own prefix (`%t:%r:%u@%d:[%p]:`), in the
  console and the files the RDS API downloads alike: the stderr parser reads them once the
  prefix is known (prefix.py). Azure's downloadable server logs are stderr with `%t-%c-`.

Each converter streams: it holds at most one unit beyond the block it is given.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from opscope.db.logs.reader import InputStats

#: formats read as stderr once unwrapped, and those written as jsonlog
STDERR_FORMS = ("cloudsql", "heroku")
JSONLOG_FORMS = ("cnpg", "azure")
MANAGED = (*STDERR_FORMS, *JSONLOG_FORMS)

HEROKU_LINE = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) "
    r"(?:app|heroku)\[(?P<source>postgres(?:\.(?P<pid>\d+))?)\]: "
    r"\[(?P<color>[A-Z0-9_]+)\] \[(?P<seq>\d+)-(?P<line>\d+)\] ?(?P<rest>.*)$"
)
#: `sql_error_code = 00000`, `time_ms = "..."`, `pid="123"`: the fields before the level
_HEROKU_FIELDS = re.compile(r'\s*(?P<key>[a-z_]+)\s*=\s*(?:"(?P<value>[^"]*)"|(?P<bare>[^\s"]+))')
_LEVEL = re.compile(r"\s*(?P<level>[A-Z]+:  .*)$", re.DOTALL)


def classify_json(line: str) -> str | None:
    """Which JSON log a line is: PostgreSQL's jsonlog, or a service's wrapping of it."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    if "textPayload" in record or "jsonPayload" in record:
        return "cloudsql"
    if isinstance(record.get("record"), dict) and "logger" in record:
        return "cnpg"
    if "records" in record or (isinstance(record.get("properties"), dict) and "category" in record):
        return "azure"
    if "message" in record:
        return "jsonlog"
    return None


def iso_to_log(ts: str) -> str:
    """2024-01-01T12:00:00.123456Z -> 2024-01-01 12:00:00.123 UTC, as %m prints it (an
    offset as PostgreSQL prints one without a zone name: +01, +0530)."""
    zone = "UTC"
    body = ts
    if ts.endswith("Z"):
        body = ts[:-1]
    elif len(ts) > 6 and ts[-6] in "+-" and ts[-3] == ":":
        body, offset = ts[:-6], ts[-6:]
        if offset not in ("+00:00", "-00:00"):
            zone = (
                offset.replace(":", "").removesuffix("00")
                if offset.endswith("00")
                else offset.replace(":", "")
            )
    date, _, time = body.partition("T")
    whole, _, frac = time.partition(".")
    return f"{date} {whole}.{(frac + '000')[:3]} {zone}"


def _lines(blocks: Iterator[bytes], stats: InputStats, max_entry: int) -> Iterator[str]:
    """The input's lines; one longer than `max_entry` is left out (counted as cut)."""
    carry = b""
    for block in blocks:
        data = carry + block
        cut = data.rfind(b"\n")
        if cut < 0:
            carry = data
            if len(carry) > max_entry:
                stats.cuts.entries += 1
                stats.cuts.bytes += len(carry)
                carry = b""
            continue
        carry = data[cut + 1 :]
        for raw in data[:cut].split(b"\n"):
            if len(raw) > max_entry:
                stats.cuts.entries += 1
                stats.cuts.bytes += len(raw)
                continue
            yield raw.decode("utf-8", "replace")
    if carry.strip():
        yield carry.decode("utf-8", "replace")


def _batched(lines: Iterator[str], size: int = 4096) -> Iterator[bytes]:
    out: list[str] = []
    for line in lines:
        out.append(line)
        if len(out) >= size:
            yield ("\n".join(out) + "\n").encode()
            out = []
    if out:
        yield ("\n".join(out) + "\n").encode()


def _other(stats: InputStats) -> None:
    stats.extra["other_lines"] = stats.extra.get("other_lines", 0) + 1


def cloudsql_payload(line: str) -> tuple[str, str] | None:
    """(timestamp, the server's text) of one Cloud Logging entry; None for another line."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    text = record.get("textPayload")
    payload = record.get("jsonPayload")
    if not isinstance(text, str) and isinstance(payload, dict):
        text = payload.get("message") or payload.get("textPayload")
    if not isinstance(text, str):
        return None
    return str(record.get("timestamp") or ""), text


def cloudsql_text(line: str) -> str | None:
    found = cloudsql_payload(line)
    return found[1] if found else None


def cloudsql_to_stderr(
    blocks: Iterator[bytes], stats: InputStats, max_entry: int, add_time: bool
) -> Iterator[bytes]:
    """The server's lines out of Cloud Logging entries; `add_time` puts the entry's own
    timestamp in front when the server's prefix has none. A payload's own line breaks
    become continuation lines (a tab in front), as the server writes them to stderr."""

    def unwrap() -> Iterator[str]:
        for line in _lines(blocks, stats, max_entry):
            if not line.strip():
                continue
            found = cloudsql_payload(line)
            if found is None:
                _other(stats)
                continue
            ts, text = found
            first, *rest = text.rstrip("\n").split("\n")
            # a continuation line the service logged on its own keeps its tab, and no time
            head = f"{iso_to_log(ts)} " if add_time and ts and not first.startswith("\t") else ""
            yield head + first
            for more in rest:
                yield more if more.startswith("\t") else "\t" + more

    return _batched(unwrap())


HEROKU_PREFIX = "%m [%p] %q%u@%d "


def heroku_to_stderr(blocks: Iterator[bytes], stats: InputStats, max_entry: int) -> Iterator[bytes]:
    """Logplex lines put back together: line 1 of a [SEQ-LINE] starts the entry, the next
    ones continue it (a tab-led piece on a line of its own, any other the rest of a line the
    drain cut)."""

    def unwrap() -> Iterator[str]:
        current: list[str] = []
        for line in _lines(blocks, stats, max_entry):
            m = HEROKU_LINE.match(line)
            if m is None:
                if line.strip():
                    _other(stats)  # the router's, the app's and other dynos' lines
                continue
            rest = m.group("rest")
            if m.group("line") != "1":
                if not current:
                    continue
                if rest.startswith("\t"):
                    current.append("\n" + rest)
                else:
                    current.append(rest)
                continue
            if current:
                yield "".join(current)
                current = []
            fields: dict[str, str] = {}
            pos = 0
            while True:
                f = _HEROKU_FIELDS.match(rest, pos)
                if f is None:
                    break
                fields[f.group("key")] = f.group("value") or f.group("bare") or ""
                pos = f.end()
            body = _LEVEL.match(rest, pos)
            if body is None:
                _other(stats)
                continue
            pid = fields.get("pid") or m.group("pid") or "0"
            who = ""
            if fields.get("user") or fields.get("database"):
                who = f"{fields.get('user', '')}@{fields.get('database', '')} "
            current = [f"{iso_to_log(m.group('ts'))} [{pid}] {who}{body.group('level')}"]
        if current:
            yield "".join(current)

    return _batched(unwrap())


def _pick(record: dict[str, Any], *names: str) -> str:
    for name in names:
        value = record.get(name)
        if value not in (None, ""):
            return str(value)
    return ""


def cnpg_record(line: str) -> dict[str, str] | None:
    try:
        outer = json.loads(line)
    except ValueError:
        return None
    if not isinstance(outer, dict) or outer.get("logger") != "postgres":
        return None
    rec = outer.get("record")
    if not isinstance(rec, dict):
        return None
    return {
        "timestamp": _pick(rec, "log_time") or str(outer.get("ts") or ""),
        "pid": _pick(rec, "process_id"),
        "session_id": _pick(rec, "session_id"),
        "user": _pick(rec, "user_name"),
        "dbname": _pick(rec, "database_name"),
        "application_name": _pick(rec, "application_name"),
        "query_id": _pick(rec, "query_id"),
        "error_severity": _pick(rec, "error_severity"),
        "state_code": _pick(rec, "sql_state_code"),
        "message": _pick(rec, "message"),
        "detail": _pick(rec, "detail"),
        "statement": _pick(rec, "query"),
        "ps": _pick(rec, "command_tag"),
    }


def _azure_props(record: dict[str, Any]) -> dict[str, Any]:
    props = record.get("properties")
    if isinstance(props, str):  # some exports keep it as a JSON string
        try:
            props = json.loads(props)
        except ValueError:
            props = None
    if not isinstance(props, dict):
        return {}
    # Log Analytics suffixes columns with their type: message_s, processId_d
    return {re.sub(r"_[sdb]$", "", k).lower(): v for k, v in props.items()}


def azure_records(line: str) -> list[dict[str, str]] | None:
    try:
        outer = json.loads(line)
    except ValueError:
        return None
    if not isinstance(outer, dict):
        return None
    listed = outer.get("records")
    records: list[Any] = listed if isinstance(listed, list) else [outer]
    out: list[dict[str, str]] = []
    for record in records:
        if not isinstance(record, dict) or record.get("category") not in (None, "PostgreSQLLogs"):
            continue
        p = _azure_props(record)
        if "message" not in p:
            continue
        out.append(
            {
                "timestamp": _pick(p, "timestamp") or _pick(record, "time", "TimeGenerated"),
                "pid": _pick(p, "processid"),
                "session_id": _pick(p, "sessionid"),
                "user": _pick(p, "username", "user"),
                "dbname": _pick(p, "databasename", "database"),
                "application_name": _pick(p, "applicationname"),
                "query_id": _pick(p, "queryid"),
                "error_severity": _pick(p, "errorlevel"),
                "state_code": _pick(p, "sqlerrcode"),
                "message": _pick(p, "message"),
                "detail": _pick(p, "detail"),
                "statement": _pick(p, "statement"),
                "ps": "",
            }
        )
    return out


def to_jsonlog(
    blocks: Iterator[bytes],
    stats: InputStats,
    max_entry: int,
    records: Callable[[str], list[dict[str, str]] | None],
) -> Iterator[bytes]:
    def convert() -> Iterator[str]:
        for line in _lines(blocks, stats, max_entry):
            if not line.strip():
                continue
            found = records(line)
            if not found:
                _other(stats)
                continue
            for rec in found:
                yield json.dumps({k: v for k, v in rec.items() if v})

    return _batched(convert())


def cnpg_records(line: str) -> list[dict[str, str]] | None:
    rec = cnpg_record(line)
    return [rec] if rec is not None else None


def detect_managed(sample: bytes) -> str | None:
    """A service's format, when most of the first lines of `sample` are in it."""
    votes: dict[str, int] = {}
    for line in sample.decode("utf-8", "replace").split("\n")[:400]:
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            kind = classify_json(line) or "other"
        elif HEROKU_LINE.match(line):
            kind = "heroku"
        else:
            kind = "other"
        votes[kind] = votes.get(kind, 0) + 1
    managed = {k: v for k, v in votes.items() if k in MANAGED}
    if not managed:
        return None
    best = max(managed, key=lambda k: managed[k])
    # a drain also carries the router's and the app's lines: a share is enough for Heroku
    needed = 0.1 if best == "heroku" else 0.5
    return best if managed[best] >= needed * sum(votes.values()) else None


def payload_sample(sample: bytes) -> str:
    """The server's lines in a Cloud SQL sample, for prefix detection."""
    lines = sample.decode("utf-8", "replace").split("\n")[:2000]
    return "\n".join(t for t in (cloudsql_text(line) for line in lines) if t is not None)


def unwrap(
    log_format: str, blocks: Iterator[bytes], stats: InputStats, max_entry: int, add_time: bool
) -> Iterator[bytes]:
    if log_format == "cloudsql":
        return cloudsql_to_stderr(blocks, stats, max_entry, add_time)
    if log_format == "heroku":
        return heroku_to_stderr(blocks, stats, max_entry)
    if log_format == "cnpg":
        return to_jsonlog(blocks, stats, max_entry, cnpg_records)
    return to_jsonlog(blocks, stats, max_entry, azure_records)

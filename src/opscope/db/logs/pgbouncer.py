"""PgBouncer's log: client and server connections, errors, and its periodic stats lines.

PgBouncer writes one line an event (`TIME [PID] LEVEL C-0x...: db/user@host:port message`
for a client, `S-0x...` for a server connection) and, every `stats_period`, a stats line
with the requests, bytes and average times since the previous one (`stats: 59 xacts/s, 59
queries/s, in 838 B/s, out 3953 B/s, xact 50 us, query 50 us, wait 6470 us`; 1.21 adds the
parse and bind rates). Counted per database and reason, merged across chunks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

LINE = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? ?\S*) \[(?P<pid>\d+)\] "
    r"(?P<level>LOG|WARNING|ERROR|FATAL|NOISE|DEBUG|INFO) (?P<msg>.*)$"
)
_CONN = re.compile(
    r"^(?P<side>[CS])-0x[0-9a-f]+: (?P<db>[^/]*)/(?P<user>[^@]*)@(?P<addr>\S+) (?P<what>.*)$"
)
_STATS = re.compile(r"^stats: (?P<body>.*)$")
_AGE = re.compile(r"\s*\(age=[^)]*\)$")
#: a client leaving on its own is not a problem
ORDERLY = frozenset({"client close request"})


def stats_key(unit: str) -> str | None:
    unit = unit.strip()
    named = {
        "xacts/s": "xacts_per_s",
        "queries/s": "queries_per_s",
        "client parses/s": "client_parses_per_s",
        "server parses/s": "server_parses_per_s",
        "binds/s": "binds_per_s",
        "B/s": None,  # in/out: told apart by the word before the number
        "us": None,
    }
    return named.get(unit, unit.replace(" ", "_").replace("/", "_per_"))


def parse_stats(body: str) -> dict[str, float]:
    """The figures of one stats line, by name."""
    out: dict[str, float] = {}
    for part in body.split(","):
        words = part.strip().split()
        if len(words) < 2:
            continue
        if words[0] in ("in", "out") and len(words) == 3:
            out[f"bytes_{words[0]}_per_s"] = float(words[1])
        elif words[0] in ("xact", "query", "wait") and len(words) == 3 and words[2] == "us":
            out[f"{words[0]}_us"] = float(words[1])
        elif words[0].isdigit():
            key = stats_key(" ".join(words[1:]))
            if key:
                out[key] = float(words[0])
    return out


@dataclass
class PoolerStats:
    lines: int = 0
    logins: dict[str, int] = field(default_factory=dict)
    login_failures: int = 0
    client_closes: dict[str, int] = field(default_factory=dict)
    server_connections: dict[str, int] = field(default_factory=dict)
    server_closes: dict[str, int] = field(default_factory=dict)
    #: pooler errors, warnings and errors, by message
    errors: dict[str, int] = field(default_factory=dict)
    levels: dict[str, int] = field(default_factory=dict)
    #: per figure of the stats lines: [samples, sum, max]
    stats: dict[str, list[float]] = field(default_factory=dict)
    first_ts: str = ""
    last_ts: str = ""

    def line(self, ts: str, level: str, msg: str) -> None:
        self.lines += 1
        self.first_ts = self.first_ts or ts
        self.last_ts = ts
        _bump(self.levels, level)
        m = _STATS.match(msg)
        if m is not None:
            for key, value in parse_stats(m.group("body")).items():
                slot = self.stats.setdefault(key, [0.0, 0.0, 0.0])
                slot[0] += 1
                slot[1] += value
                slot[2] = max(slot[2], value)
            return
        c = _CONN.match(msg)
        what = c.group("what") if c is not None else msg
        if c is not None and c.group("side") == "C":
            if what.startswith("login attempt:"):
                _bump(self.logins, c.group("db"))
            elif what.startswith("login failed:"):
                self.login_failures += 1
            elif what.startswith("closing because:"):
                _bump(self.client_closes, _AGE.sub("", what[len("closing because:") :].strip()))
        elif c is not None and c.group("side") == "S":
            if what.startswith("new connection to server"):
                _bump(self.server_connections, c.group("db"))
            elif what.startswith("closing because:"):
                _bump(self.server_closes, _AGE.sub("", what[len("closing because:") :].strip()))
        if level in ("WARNING", "ERROR", "FATAL"):
            text = what.removeprefix("pooler error: ")
            _bump(self.errors, text)

    def merge(self, other: PoolerStats) -> None:
        self.lines += other.lines
        for mine, theirs in (
            (self.logins, other.logins),
            (self.client_closes, other.client_closes),
            (self.server_connections, other.server_connections),
            (self.server_closes, other.server_closes),
            (self.errors, other.errors),
            (self.levels, other.levels),
        ):
            for key, n in theirs.items():
                mine[key] = mine.get(key, 0) + n
        self.login_failures += other.login_failures
        for key, figures in other.stats.items():
            slot = self.stats.setdefault(key, [0.0, 0.0, 0.0])
            slot[0] += figures[0]
            slot[1] += figures[1]
            slot[2] = max(slot[2], figures[2])
        if other.first_ts and (not self.first_ts or other.first_ts < self.first_ts):
            self.first_ts = other.first_ts
        if other.last_ts > self.last_ts:
            self.last_ts = other.last_ts

    def summary(self) -> dict[str, Any]:
        abnormal = {r: n for r, n in self.client_closes.items() if r not in ORDERLY}
        return {
            "lines": self.lines,
            "first": self.first_ts or None,
            "last": self.last_ts or None,
            "logins": sum(self.logins.values()),
            "logins_by_database": dict(sorted(self.logins.items())),
            "login_failures": self.login_failures,
            "client_closes": dict(sorted(self.client_closes.items(), key=lambda kv: -kv[1])),
            "abnormal_client_closes": sum(abnormal.values()),
            "server_connections": sum(self.server_connections.values()),
            "server_closes": dict(sorted(self.server_closes.items(), key=lambda kv: -kv[1])),
            "errors": sum(self.errors.values()),
            "errors_by_message": dict(sorted(self.errors.items(), key=lambda kv: -kv[1])),
            "stats": {
                key: {
                    "samples": int(samples),
                    "mean": round(total / samples, 1) if samples else 0.0,
                    "max": peak,
                }
                for key, (samples, total, peak) in sorted(self.stats.items())
            },
        }


def _bump(counts: dict[str, int], key: str) -> None:
    if len(counts) < 200 or key in counts:
        counts[key] = counts.get(key, 0) + 1


def is_pgbouncer(sample: bytes) -> bool:
    """Most of the first lines are PgBouncer's."""
    lines = [ln for ln in sample.decode("utf-8", "replace").split("\n")[:400] if ln.strip()]
    if not lines:
        return False
    hits = sum(
        1
        for ln in lines
        if (m := LINE.match(ln)) is not None
        and (m.group("msg").startswith(("C-0x", "S-0x", "stats: ")) or "PgBouncer" in ln)
    )
    return hits * 2 >= len(lines)

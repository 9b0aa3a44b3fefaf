"""log_line_prefix -> regular expression, and detection of the prefix a log was written with.

A stderr log line is `PREFIX LEVEL:  message`; continuation lines of a multi-line message
start with a tab. The compiled entry pattern always defines the same named groups (an absent
field is an empty group matched up front), so the parser reads every match the same way
whatever prefix produced the file.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

#: named groups every entry pattern defines, in the order the parser reads them
FIELDS = ("ts", "pid", "user", "db", "app", "qid", "sqlstate", "session", "tag")

# An alternation with an empty branch, not `(?:…)?`: the same tries in the same order, and
# the regex engine runs a branch with less bookkeeping than a repeat (5% of a match).
_TZ = r"(?: [A-Za-z0-9+\-]+|)"
_TS_SECONDS = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d" + _TZ
_TS_MILLIS = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}" + _TZ

# Free-text fields are lazy and stop at a newline: the literal text that follows them in the
# prefix decides where they end, the way PostgreSQL wrote them. They are also bounded: names
# are at most 63 bytes (NAMEDATALEN), hosts a few hundred; an unbounded lazy field tried every
# '@' of a long non-entry line against every later delimiter, which is quadratic (minutes for
# a few 100 kB lines full of '@').
_NAME = r"[^\n]{0,64}?"
_HOST = r"[^\n]{0,300}?"
_ESCAPES: dict[str, tuple[str | None, str]] = {
    "a": ("app", _NAME),
    "u": ("user", _NAME),
    "d": ("db", _NAME),
    "r": (None, _HOST),
    "h": (None, _HOST),
    "b": (None, _NAME),
    "i": ("tag", _NAME),
    "p": ("pid", r"\d+"),
    "P": (None, r"\d*"),
    "t": ("ts", _TS_SECONDS),
    "m": ("ts", _TS_MILLIS),
    "n": ("ts", r"\d+\.\d+"),
    "s": (None, _TS_SECONDS),
    "e": ("sqlstate", r"[0-9A-Z]{5}"),
    "c": ("session", r"[0-9a-f]+\.[0-9a-f]+"),
    "l": (None, r"\d+"),
    "v": (None, r"(?:\d+/\d+)?"),
    "x": (None, r"\d*"),
    "Q": ("qid", r"-?\d+"),
}

_LEVEL = r"(?P<level>[A-Z]+[1-5]?):  "
# Possessive (nothing after the message could make it give back a line): the regex engine
# then keeps no backtracking state per continuation line.
_MESSAGE = r"(?P<msg>[^\n]*+(?:\n\t[^\n]*+)*+)"

#: prefixes seen in the wild, most specific first: PostgreSQL's and Debian's defaults, the
#: ones pgBadger's documentation recommends, and managed services' fixed ones
COMMON_PREFIXES = (
    "%m [%p] %q%u@%d app=%a qid=%Q ",  # what docs/logs.md recommends
    "%m [%p] %q%u@%d app=%a ",
    "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",
    "%m [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",
    "%t [%p]: user=%u,db=%d,app=%a,client=%h ",
    "%m [%p]: user=%u,db=%d,app=%a,client=%h ",
    "%t [%p]: [%l-1] db=%d,user=%u,app=%a,client=%h ",
    "%t [%p]: [%l-1] user=%u,db=%d ",
    "%t [%p]: db=%d,user=%u,app=%a,client=%h ",
    "%m [%p] %q%u@%d/%a ",  # the PostgreSQL manual's example
    "%t [%p] %q%u@%d/%a ",
    "%m [%p] %q%u@%d ",
    "%t [%p] %q%u@%d ",
    "%m [%p-%l] %q%u@%d ",
    "%t [%p-%l] %q%u@%d ",
    "%m [%p] %q[user=%u,db=%d,app=%a] ",
    "%t:%r:%u@%d:[%p]:",  # Amazon RDS and Aurora
    "%m:%r:%u@%d:[%p]:",
    "%m [%p]: [%l-1] db=%d,user=%u ",  # Google Cloud SQL
    "%t [%p]: [%l-1] db=%d,user=%u ",
    "%t-%c-",  # Azure Database for PostgreSQL
    "%m-%c-",
    "%m [%p] ",
    "%t [%p] ",
    "%m [%p]: ",
    "%t [%p]: ",
    "%m ",
    "%t ",
    "[%p] ",
    # after a syslog tag (pgBadger's recommendation for syslog): no time, no pid
    "user=%u,db=%d,app=%a,client=%h ",
    "[%l-1] user=%u,db=%d,app=%a,client=%h ",
    "user=%u,db=%d ",
    "",
)


class PrefixError(ValueError):
    """A --prefix the tool cannot turn into a pattern."""


@dataclass(frozen=True)
class CompiledPrefix:
    text: str
    #: an entry at a line start (`(?m)^`), for one line or a text
    entry: re.Pattern[str]
    #: group numbers of FIELDS + ("level", "msg"), for one `match.group(*indices)` call
    indices: tuple[int, ...]
    #: "millis", "seconds", "epoch" or "" when the prefix has no timestamp
    ts_kind: str
    #: `entry` after a newline, with the same groups: what parse_stderr scans a chunk
    #: with (after a newline put before it). The regex engine looks for a pattern's
    #: leading literal with a fast loop and only tries the pattern there; `(?m)^` is no
    #: literal, and `entry` is tried at every character (a third slower over a log).
    scan: re.Pattern[str]
    #: `scan` with the names followed by a literal character read up to that character
    #: (possessive), where that gives the same matches; None where it may not (see
    #: _translate). parse_stderr reads the lines it leaves out with `scan`.
    fast: re.Pattern[str] | None
    #: whether a field group can be absent from a match (None): the part after %q, and the
    #: generic pattern's time and pid; other prefixes always give a str for every field
    optional: bool = True


#: what a time zone abbreviation (the _TZ group) is made of
_TZ_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+-")


def _translate(prefix: str) -> tuple[str, set[str], str, bool, str | None]:
    """(pattern, fields used, kind of time, whether a part is optional, fast pattern).

    The fast pattern reads a name followed by a literal character (`user=%u,db=`) up to
    the first such character, possessively, instead of trying every length from 0 up
    (the regex engine's lazy loop, a third of the time of a match). It finds the same
    match as the lazy pattern wherever it finds one: that first character is the lazy
    loop's first candidate, and as long as every part before the name can match in one
    way only at a given position (a literal, a digit run followed by a non-digit, a
    time whose zone cannot run into what follows, a name read so), the lazy pattern
    tries the first candidates of every name first. Once a part can match in more ways
    (%q, padding, a name followed by no literal, other escapes) the names after it stay
    lazy. The digits of a time or pid read so are ASCII ones (`\\d` is those of any script:
    a match of the fast pattern is one of the lazy one still). Where the fast pattern
    finds no match the lazy one may, so parse_stderr reads what it leaves out with the
    lazy one.
    """
    parts: list[str] = []
    fast: list[str] = []
    #: every part so far matches in one way only at a given position
    single = not prefix.startswith("\t")
    faster = False
    used: set[str] = set()
    ts_kind = ""
    optional_from: int | None = None
    i = 0
    while i < len(prefix):
        ch = prefix[i]
        if ch != "%":
            parts.append(re.escape(ch))
            fast.append(re.escape(ch))
            i += 1
            continue
        m = re.match(r"%(-?\d+)?(.)", prefix[i:])
        if m is None:
            raise PrefixError(f"log_line_prefix ends with a bare '%': {prefix!r}")
        padding, esc = m.group(1), m.group(2)
        i += m.end()
        if esc == "%":
            parts.append("%")
            fast.append("%")
            continue
        if esc == "q":
            # Non-session processes (checkpointer, autovacuum) stop the prefix at %q.
            optional_from = len(parts)
            single = False
            continue
        if esc not in _ESCAPES:
            raise PrefixError(f"unknown escape %{esc} in log_line_prefix {prefix!r}")
        name, pattern = _ESCAPES[esc]
        # the literal character after the escape, if one follows
        after = prefix[i] if i < len(prefix) and prefix[i] != "%" else ""
        quick = pattern
        was_single = single
        if padding or not after:
            single = False
        elif pattern in (_NAME, _HOST) and single:
            bound = 64 if pattern == _NAME else 300
            quick = f"[^\\n{re.escape(after)}]{{0,{bound}}}+"
            faster = True
        elif esc in ("p", "l") and not after.isdecimal():
            pass  # a digit run, then a character that is no digit: one way
        elif esc in ("t", "m", "s") and after not in _TZ_CHARS:
            # With a zone the time is followed by a space and a zone character; without,
            # by `after` (and what follows it): one way, unless both can be.
            following = prefix[i + 1 : i + 2]
            if after == " " and (not following or following == "%" or following in _TZ_CHARS):
                single = False
        else:
            single = False
        if was_single and single and esc in ("t", "m", "s", "p", "l"):
            # ASCII digits: a character class is cheaper for the regex engine than \d (any
            # script's digits); a time or pid in other digits is left to the lazy pattern.
            quick = pattern.replace("\\d", "[0-9]")
            faster = True
        if name is not None and name not in used:
            used.add(name)
            pattern = f"(?P<{name}>{pattern})"
            quick = f"(?P<{name}>{quick})"
            if name == "ts":
                ts_kind = {"m": "millis", "t": "seconds", "n": "epoch"}[esc]
        else:
            pattern = f"(?:{pattern})"
            quick = f"(?:{quick})"
        if padding:
            # %-10u pads with spaces on the right, %10u on the left.
            pattern = quick = f" *{pattern} *"
        parts.append(pattern)
        fast.append(quick)
    if optional_from is not None:
        parts[optional_from:] = ["(?:" + "".join(parts[optional_from:]) + ")?"]
        fast[optional_from:] = ["(?:" + "".join(fast[optional_from:]) + ")?"]
    return (
        "".join(parts),
        used,
        ts_kind,
        optional_from is not None,
        "".join(fast) if faster else None,
    )


@functools.lru_cache(maxsize=64)
def compile_prefix(prefix: str) -> CompiledPrefix:
    body, used, ts_kind, optional, quick = _translate(prefix)
    # The fields the prefix lacks are empty groups at the end: before the prefix, they
    # would hide its first character from the regex engine's literal search (see `scan`).
    absent = "".join(f"(?P<{name}>)" for name in FIELDS if name not in used)
    try:
        entry = re.compile(f"(?m)^{body}{_LEVEL}{_MESSAGE}{absent}")
        scan = re.compile(f"\\n{body}{_LEVEL}{_MESSAGE}{absent}")
        fast = None if quick is None else re.compile(f"\\n{quick}{_LEVEL}{_MESSAGE}{absent}")
    except re.error as exc:
        raise PrefixError(f"cannot compile log_line_prefix {prefix!r}: {exc}") from None
    indices = tuple(entry.groupindex[name] for name in (*FIELDS, "level", "msg"))
    return CompiledPrefix(
        text=prefix,
        entry=entry,
        indices=indices,
        ts_kind=ts_kind,
        scan=scan,
        fast=fast,
        optional=optional,
    )


_LEVELS = frozenset(
    {"LOG", "ERROR", "FATAL", "PANIC", "WARNING", "NOTICE", "INFO", "DEBUG", "DEBUG1"}
    | {"DEBUG2", "DEBUG3", "DEBUG4", "DEBUG5", "DETAIL", "HINT", "CONTEXT", "STATEMENT"}
    | {"QUERY", "LOCATION"}
)


#: the pattern used when no known prefix fits: the first timestamp and the first `[digits]`
#: before the level are taken as time and pid, whatever else the prefix holds
GENERIC = "<generic>"
_GENERIC_LEVELS = "|".join(sorted(_LEVELS - {"DEBUG"}, key=len, reverse=True))


@functools.lru_cache(maxsize=1)
def generic_prefix() -> CompiledPrefix:
    """Time at the line start, pid from the first `[digits]`, then the first level.

    Linear in the line length: the text before the pid cannot step over a `[digits]`
    bracket, so there is one place the pid group can match, and the optional group is
    either that match or skipped. (The former `[^\\n]*?(?:\\[(\\d+)\\][^\\n]*?)?`
    tried every bracket as the pid against every end of the line: quadratic, 35 s for one
    80 kB line of `[1] ` repeated; this pattern reads a 200 kB such line in milliseconds.)
    The loop before the pid is possessive: giving back characters could never let the
    bracket match, and a greedy loop kept about 330 bytes of backtracking state per
    character (a 1 MB line without `[digits]` took 330 MB).
    """
    absent = "".join(f"(?P<{name}>)" for name in FIELDS if name not in ("ts", "pid"))
    body = (
        f"(?P<ts>\\d{{4}}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d(?:\\.\\d+)?{_TZ})?"
        f"(?:(?:[^\\n\\[]|\\[(?!\\d+\\]))*+\\[(?P<pid>\\d+)\\])?"
        f"[^\\n]*?\\b(?P<level>{_GENERIC_LEVELS}):  {_MESSAGE}{absent}"
    )
    entry = re.compile(f"(?m)^{body}")
    indices = tuple(entry.groupindex[name] for name in (*FIELDS, "level", "msg"))
    return CompiledPrefix(
        text=GENERIC,
        entry=entry,
        indices=indices,
        ts_kind="millis",
        scan=re.compile(f"\\n{body}"),
        fast=None,
    )


def resolve_prefix(prefix: str) -> CompiledPrefix:
    return generic_prefix() if prefix == GENERIC else compile_prefix(prefix)


#: what a user, database or application name never holds when the prefix was read right:
#: a space or `=` means a shorter prefix's last field swallowed the rest of the real one
_SWALLOWED = re.compile(r"[ =]")


def _clean(m: re.Match[str]) -> bool:
    user, db, app = (value or "" for value in m.group("user", "db", "app"))
    return not (_SWALLOWED.search(user) or _SWALLOWED.search(db) or "=" in app)


def detect_prefix(sample: str) -> str | None:
    """The common prefix that explains most lines of `sample`, or None when none fits.

    A candidate scores the message lines it matches with a known level and plausible
    names: a user or database with a space or `=` in it, or an application with `=`, is
    the sign of a shorter prefix whose last field took in the rest of the real one (as
    `%u@%d ` would read `alice@work app=psql `), and does not count. The most specific
    candidate (the longest) wins a tie, so `%m [%p] ` does not beat a longer prefix that
    also matches.
    """
    lines = [ln for ln in sample.split("\n")[:2000] if ln and not ln.startswith("\t")]
    if not lines:
        return None
    best: tuple[int, int, str] | None = None
    for candidate in COMMON_PREFIXES:
        compiled = compile_prefix(candidate)
        hits = 0
        for line in lines:
            m = compiled.entry.match(line)
            if m is not None and m.group("level") in _LEVELS and _clean(m):
                hits += 1
        score = (hits, len(candidate), candidate)
        if hits and (best is None or score[:2] > best[:2]):
            best = score
    if best is None or best[0] * 2 < len(lines):
        return None
    return best[2]

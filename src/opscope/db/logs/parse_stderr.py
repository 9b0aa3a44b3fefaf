"""The stderr format: `PREFIX LEVEL:  message`, continuation lines starting with a tab.

Speed comes from matching whole entries over a multi-megabyte chunk with one compiled
pattern (`finditer` runs in C) and doing the least possible Python work per entry: a few
`startswith` tests, one float conversion, and normalization only through its cache. Lines
the pattern does not explain are the gaps between matches; they are counted as bad input.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Final

from opscope.db.logs.aggregate import Execution
from opscope.db.logs.maintenance import MAINTENANCE_HEADS
from opscope.db.logs.normalize import normalize
from opscope.db.logs.prefix import CompiledPrefix
from opscope.db.logs.sessions import ChunkState, maintenance_entry

#: levels of the lines that complete the entry before them
SECONDARY: Final = frozenset(("DETAIL", "STATEMENT", "CONTEXT", "HINT", "QUERY", "LOCATION"))
ERROR_LEVELS: Final = frozenset(("ERROR", "FATAL", "PANIC"))

_LOCK: Final = re.compile(
    r"process \d+ (still waiting for|acquired|avoided deadlock for"
    r"|detected deadlock while waiting for) .*? after (\d+(?:\.\d+)?) ms"
)
#: `duration: N ms`, strictly: inf, nan, negative or cut-off values are bad input
DURATION: Final = re.compile(r"duration: (\d{1,15}(?:\.\d+)?) ms")
_TEMP: Final = re.compile(r'temporary file: path ".*?", size (\d+)')
_SQLSTATE: Final = re.compile(r"([0-9A-Z]{5}): ")
_PLAN_NODE: Final = re.compile(r"  \((?:cost=|actual )|\(never executed\)")
_JSON_QUERY_TEXT: Final = re.compile(r'"Query Text": "((?:[^"\\]|\\.)*)"')
_QUERY_PARAMETERS: Final = "Query Parameters: "

# Entry kinds waiting for their DETAIL/STATEMENT lines; _NONE is "no entry yet", so a
# DETAIL line there has lost its entry (the chunk cannot start that way: it is bad input).
_LOGGED: Final = 0
_ERROR: Final = 1
_TEMP_FILE: Final = 2
_LOCK_WAIT: Final = 3
_IGNORED: Final = 4
_NONE: Final = 5
_NEEDS_STATEMENT: Final = frozenset((_ERROR, _TEMP_FILE, _LOCK_WAIT))
_SKIP: Final[list[Any]] = [_NONE]
_SKIP_AFTER_MAIN: Final[list[Any]] = [_IGNORED]


_BLANK_LINE: Final = re.compile(r"(?m)^[^\S\n]*$")
_NOT_SPACE: Final = re.compile(r"\S")
_UNIT_START: Final = re.compile(r"\n(?!\t)")


def _count_lines(text: str) -> int:
    """Bad lines are counted one per non-blank line, however the input was cut (counted,
    not split: a chunk of short garbage lines would be a list of millions of strings)."""
    return text.count("\n") + 1 - _BLANK_LINE.subn("", text)[1]


@functools.lru_cache(maxsize=8)
def _long_line(limit: int) -> re.Pattern[str]:
    # Anchored at line starts, so each line is scanned once: linear in the text. (A count
    # is at most 2**32 - 2 for the regex engine; no chunk holds a line that long.)
    return re.compile(rf"(?m)^[^\n]{{{min(limit + 1, 1 << 31)}}}")


def cut_units(text: str, state: ChunkState) -> str:
    """`text` with every unit (a line and the tab-indented lines after it) longer than
    max_entry_bytes cut to that length, the cuts counted: what the reader does to a unit
    that grows past the bound at the end of its buffer, done to the units inside a chunk."""
    limit = state.max_entry
    if len(text) <= limit or ("\n\t" not in text and _long_line(limit).search(text) is None):
        return text
    aggregate = state.aggregate
    pieces = []
    start = 0
    for m in (*_UNIT_START.finditer(text), None):
        end = len(text) if m is None else m.start()
        if end - start > limit:
            pieces.append(text[start : start + limit])
            aggregate.cut_entries += 1
            aggregate.cut_bytes += len(text[start + limit : end].encode())
        else:
            pieces.append(text[start:end])
        start = end + 1
    return "\n".join(pieces)


def _bad_lines(text: str, state: ChunkState) -> None:
    """Count the non-blank lines of `text` (which are no entry) as bad input, with a
    sample; units over the bound are cut first, so the count does not depend on whether
    the reader or the parser cut them."""
    text = cut_units(text, state)
    first = _NOT_SPACE.search(text)
    sample = text[first.start() if first else 0 :][:2000].rstrip()
    state.aggregate.bad_input(sample, _count_lines(text))


def _cut_entry(
    text: str, start: int, end: int, prefix: CompiledPrefix, state: ChunkState
) -> re.Match[str] | None:
    """The entry text[start:end], longer than max_entry_bytes, cut to that length: its
    match, the cut counted; or None when what is kept is no entry any more (it is then a
    bad line, cut and counted as such)."""
    limit = state.max_entry
    m = prefix.entry.match(text[start : start + limit])
    if m is not None:
        state.aggregate.cut_entries += 1
        state.aggregate.cut_bytes += len(text[start + limit : end].encode())
    return m


def duration_end(msg: str) -> int:
    """Where the `duration: N ms` that starts `msg` ends, or -1 where DURATION would not
    match."""
    return read_duration(msg)[0]


def read_duration(msg: str) -> tuple[int, float]:
    """(duration_end(msg), the number: float(msg[10:end - 3])), on every execution's line.

    The digits are read one by one (`ord(msg[i])` is a direct read when compiled); a
    character outside ASCII, maybe a digit of another script, is left to the string tests
    of _duration_end. The number is its digits as an integer over a power of ten: with at
    most 15 digits both are exact doubles, so their quotient is the correctly rounded
    value of the decimal, which is what float() gives; longer numbers go to float()."""
    n = len(msg)
    i = 10
    value = 0
    while i < n:
        c = ord(msg[i])
        if c < 48 or c > 57:
            break
        value = value * 10 + c - 48
        i += 1
    if i == 10 or i - 10 > 15:
        if i == 10 and (i >= n or ord(msg[i]) < 128):
            return -1, 0.0
        return _read_duration(msg)
    scale = 1
    if i < n and ord(msg[i]) == 46:  # "."
        j = i + 1
        while j < n:
            c = ord(msg[j])
            if c < 48 or c > 57:
                break
            value = value * 10 + c - 48
            scale *= 10
            j += 1
        if j == i + 1 and (j >= n or ord(msg[j]) < 128):
            return -1, 0.0
        i = j
    if msg.find(" ms", i, i + 3) == i:
        digits = i - 10 - (1 if scale > 1 else 0)
        return i + 3, (value / scale if digits <= 15 else float(msg[10:i]))
    if i >= n or ord(msg[i]) < 128:
        return -1, 0.0
    return _read_duration(msg)


def _read_duration(msg: str) -> tuple[int, float]:
    end = _duration_end(msg)
    return end, float(msg[10 : end - 3]) if end >= 0 else 0.0


def _duration_end(msg: str) -> int:
    """duration_end, by string tests (str.isdecimal: the digits of every script)."""
    end = msg.find(" ms", 10)
    if end < 11:
        return -1
    number = msg[10:end]
    dot = number.find(".")
    whole, fraction = (number, "0") if dot < 0 else (number[:dot], number[dot + 1 :])
    if len(whole) > 15 or not whole.isdecimal() or not fraction.isdecimal():
        return -1
    return end + 3


def untab(text: str) -> str:
    """Continuation lines are written as newline + tab; give back the original text."""
    return text.replace("\n\t", "\n") if "\n\t" in text else text


def epoch_to_text(value: str) -> str:
    try:
        moment = datetime.fromtimestamp(float(value), UTC)
    except (ValueError, OverflowError, OSError):
        return ""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:23] + " UTC"


def split_plan(body: str) -> tuple[str, str, str | None]:
    """(query text, plan, query parameters) of an auto_explain entry, text or JSON format.

    PostgreSQL 16+ logs the bind values (`Query Parameters:`) between the text and the
    plan; they are the execution's parameters, not part of its text. A JSON plan that does
    not parse keeps its raw text as the plan and, if it can be found, its query text."""
    plan = untab(body).strip()
    if plan.startswith("{") or plan.startswith("["):
        try:
            data = json.loads(plan)
            node = data[0] if isinstance(data, list) else data
            values = node.get("Query Parameters")
            return (
                str(node.get("Query Text", "")),
                plan,
                str(values) if values is not None else None,
            )
        except (ValueError, AttributeError, IndexError, KeyError, TypeError):
            pass
        m = _JSON_QUERY_TEXT.search(plan)
        query = ""
        if m is not None:
            try:
                query = str(json.loads(f'"{m.group(1)}"'))
            except ValueError:
                query = m.group(1)
        return query, plan, None
    if plan.startswith("Query Text: "):
        lines = plan.split("\n")
        end = len(lines)
        for i in range(1, len(lines)):
            if _PLAN_NODE.search(lines[i]):
                end = i
                break
        else:
            end = 1
        head = lines[:end]
        params: str | None = None
        for i in range(len(head)):
            if head[i].startswith(_QUERY_PARAMETERS):
                params = "\n".join(head[i:])[len(_QUERY_PARAMETERS) :].strip()
                head = head[:i]
                break
        return "\n".join(head)[12:].strip(), "\n".join(lines[end:]), params
    return "", plan, None


def scan_entries(
    text: str, fast: re.Pattern[str], lazy: re.Pattern[str]
) -> Iterator[re.Match[str]]:
    """The matches of `lazy` over `text` (which starts with a newline), found with `fast`:
    a CompiledPrefix's fast pattern finds what its lazy one finds wherever it finds
    anything (prefix._translate), and the lines it leaves out — between its matches, and
    after the last — are read with the lazy one."""
    pos = 0  # where the next match starts when no line lies between
    for m in fast.finditer(text):
        start = m.start()
        if start != pos:
            yield from lazy.finditer(text, pos, start)
        yield m
        pos = m.end()
    if pos < len(text):
        yield from lazy.finditer(text, pos)


def parse_stderr(text: str, prefix: CompiledPrefix, state: ChunkState) -> None:
    aggregate = state.aggregate
    # Methods are called as such, not bound to locals: compiled, that is a direct call.
    pending = state.pending
    seen = state.seen
    plain = state.plain
    epoch = prefix.ts_kind == "epoch"
    indices = prefix.indices
    optional = prefix.optional
    # positions in match.groups() of the fields (group numbers start at 1)
    i_ts, i_pid, i_user, i_db, i_app, i_qid, i_sqlstate, i_session, i_tag, i_level, i_msg = [
        i - 1 for i in indices
    ]
    # The scan pattern starts with the newline before an entry; the one put first stands
    # for the start of the chunk (which starts an entry or a bad line).
    text = "\n" + text
    pos = 1
    first_ts = ""
    # Declared str: unpacked from match groups they would be `str | Any`, which compiled
    # code treats as any object (every string method a lookup by name).
    ts = pid = user = db = app = qid = sqlstate = session = tag = level = msg = ""
    # The execution before the current line, kept in locals (the fast path) until the
    # next main entry shows that no DETAIL (bind parameters) line belongs to it.
    x_sid: str | None = None
    x_ts = x_text = x_db = x_user = x_app = x_pid = x_qid = x_kind = ""
    x_params: str | None = None
    x_duration = 0.0
    # Any other entry waiting for its DETAIL/STATEMENT lines: logged statements are
    # [kind, session, ts, duration, text, parameters, db, user, app, pid, query id,
    # execution kind] (the arguments of ChunkState.add); errors, temp files and lock waits
    # are [kind, ts, user, db, level, sqlstate, message, statement].
    current: list[Any] = _SKIP
    limit = state.max_entry
    match: re.Match[str] | None
    fast = prefix.fast
    lazy = prefix.scan
    scanner = (lazy if fast is None else fast).finditer(text)
    # scan_entries, inline (a generator costs more per entry than what it does): the lines
    # the fast pattern leaves out are read with the lazy one, `gap_scan`, before `held`,
    # the fast match after them; `scanned` is where the next match starts if no line lies
    # between.
    gap_scan: Iterator[re.Match[str]] | None = None
    held: re.Match[str] | None = None
    scanned = 0
    tail_read = False
    # A local: compiled, a call to the builtin `next` looks the name up in builtins on
    # every call; the local is called directly.
    step = next
    while True:
        if gap_scan is not None:
            match = step(gap_scan, None)
            if match is None:
                gap_scan = None
                match, held = held, None
                if match is None:
                    break
                first, end = match.span()
                scanned = end
            else:
                first, end = match.span()
        else:
            match = step(scanner, None)
            if match is None:
                if fast is None or tail_read or scanned >= len(text):
                    break
                tail_read = True
                gap_scan = lazy.finditer(text, scanned)
                continue
            first, end = match.span()
            if fast is not None:
                if first != scanned:
                    gap_scan = lazy.finditer(text, scanned, first)
                    held = match
                    continue
                scanned = end
        start = first + 1
        entry_end = end
        if end - start > limit:
            match = _cut_entry(text, start, end, prefix, state)
            if match is not None:
                entry_end = start + match.end()
        # an entry that is no entry once cut is a bad line, read with the gap before it
        gap_end = start if match is not None else end
        if gap_end != pos:
            gap = text[pos:gap_end]
            if not gap.isspace():
                _bad_lines(gap, state)
                # Lines that are no entry end the entry before them (a chunk may start
                # right after them): a DETAIL line after them has lost its entry.
                if x_sid is not None:
                    state.add(x_sid, x_ts, x_duration, x_text, x_params, x_db, x_user, x_app, x_pid,
                        x_qid, x_kind)  # fmt: skip
                    x_sid = x_params = None
                elif current[0] != _IGNORED and current[0] != _NONE:
                    _finish(current, state)
                current = _SKIP
        pos = end + 1
        if match is None:
            continue
        m = match
        anonymous = False
        if optional:
            fields = m.group(*indices)
            # Optional prefix parts (after %q, or the generic prefix's time and pid) are
            # None when absent: they are read as empty, so every field is a str (as the
            # compiled module requires). An execution without pid nor session was never
            # counted; that stays so (`anonymous`) until it is decided what to count it as.
            if None in fields:
                anonymous = fields[1] is None and not fields[7]
                fields = tuple(["" if f is None else f for f in fields])
            ts, pid, user, db, app, qid, sqlstate, session, tag, level, msg = fields
        else:
            # every group matched: all of them at once (half the cost of group(*indices))
            groups = m.groups()
            ts = groups[i_ts]
            pid = groups[i_pid]
            user = groups[i_user]
            db = groups[i_db]
            app = groups[i_app]
            qid = groups[i_qid]
            sqlstate = groups[i_sqlstate]
            session = groups[i_session]
            tag = groups[i_tag]
            level = groups[i_level]
            msg = groups[i_msg]
        # Most lines are LOG, most others DETAIL: a comparison each before the set lookup.
        if level != "LOG" and (level == "DETAIL" or level in SECONDARY):
            if x_sid is not None:
                if level == "DETAIL" and msg.startswith("parameters: "):
                    x_params = untab(msg[12:])
                continue
            kind = current[0]
            if kind == _NONE:
                aggregate.bad_input(text[start:entry_end])
            elif level == "DETAIL":
                if kind == _LOGGED and msg.startswith("parameters: "):
                    current[5] = untab(msg[12:])
            elif level == "STATEMENT" and kind in _NEEDS_STATEMENT:
                current[7] = untab(msg)
            continue
        if x_sid is not None:
            if plain and x_text and not pending and x_sid in seen:
                normalized = normalize(x_text)
                aggregate.add(normalized[0], normalized[1], x_ts, x_duration, x_text, x_params,
                              x_db, x_user, x_app, x_pid, x_qid, x_kind)  # fmt: skip
            else:
                state.add(x_sid, x_ts, x_duration, x_text, x_params, x_db, x_user, x_app, x_pid,
                    x_qid, x_kind)  # fmt: skip
            x_sid = x_params = None
        else:
            kind = current[0]
            if kind != _IGNORED and kind != _NONE:
                _finish(current, state)
        current = _SKIP_AFTER_MAIN
        aggregate.entries += 1
        if epoch:
            ts = epoch_to_text(ts)
        if not first_ts:
            first_ts = ts
        if qid == "0":
            qid = ""
        # log_error_verbosity = verbose puts the SQLSTATE before every message, LOG too.
        # (`": "` at 5 told by ord(msg[i]), a direct read when compiled; below, `find` with
        # bounds, not `startswith` with a start, which is a method lookup even on a str.)
        if len(msg) > 6 and ord(msg[5]) == 58 and ord(msg[6]) == 32 and _SQLSTATE.match(msg):
            if not sqlstate:
                sqlstate = msg[:5]
            msg = msg[7:]
        if level == "LOG":
            if msg.startswith("duration: "):
                after, duration = read_duration(msg)
                if after < 0:
                    aggregate.bad_input(text[start:entry_end])
                    continue
                # The two common forms are read in place, without a copy of the rest.
                # Told apart by their third character first (a direct read when compiled):
                # `find` is a call, and only one of the two can match.
                third = ord(msg[after + 2]) if after + 2 < len(msg) else 0
                if third == 115 and msg.find("  statement: ", after, after + 13) == after:
                    x_text = untab(msg[after + 13 :])
                    x_kind = "statement"
                elif third == 101 and msg.find("  execute ", after, after + 10) == after:
                    colon = msg.find(": ", after + 10)
                    x_text = untab(msg[colon + 2 :] if colon >= 0 else msg[after + 1 :])
                    x_kind = "execute"
                else:
                    rest = msg[after:]
                    if not rest:
                        # log_duration's parse and bind lines carry no text; only %i tells them.
                        if tag == "PARSE" or tag == "BIND":
                            (aggregate.prepare if tag == "PARSE" else aggregate.bind).add(duration)
                            continue
                        x_text = ""
                        x_kind = "statement"
                    elif rest.startswith("  plan:"):
                        query, plan, plan_params = split_plan(rest[7:])
                        record = Execution(ts, duration, query, plan_params, db, user, app, pid,
                                           qid, "plan", plan)  # fmt: skip
                        state.plan(session or pid, record)
                        continue
                    elif rest.startswith("  parse ") or rest.startswith("  prepare "):
                        aggregate.prepare.add(duration)
                        continue
                    elif rest.startswith("  bind "):
                        aggregate.bind.add(duration)
                        continue
                    else:
                        # "fastpath function call" and other forms: an execution all the same.
                        body = rest.lstrip()
                        colon = body.find(": ")
                        x_text = untab(body[colon + 2 :] if colon >= 0 else body)
                        x_kind = "other"
                x_sid = None if anonymous else session or pid
                x_ts, x_duration, x_db, x_user, x_app, x_pid, x_qid = (
                    ts, duration, db, user, app, pid, qid
                )  # fmt: skip
            elif msg.startswith("statement: "):
                current = [_LOGGED, session or pid, ts, 0.0, untab(msg[11:]), None, db, user,
                           app, pid, qid, "statement"]  # fmt: skip
            elif msg.startswith("execute "):
                text_ = untab(msg[msg.find(": ", 8) + 2 :])
                current = [_LOGGED, session or pid, ts, 0.0, text_, None, db, user, app, pid,
                           qid, "execute"]  # fmt: skip
            elif msg.startswith("temporary file: "):
                current = [_TEMP_FILE, ts, user, db, level, "", msg, ""]
            elif msg.startswith("disconnection: "):
                state.disconnect(session or pid)
            elif msg.startswith("process ") and (
                " waiting " in msg or " acquired " in msg or " deadlock " in msg
            ):
                current = [_LOCK_WAIT, ts, user, db, level, "", msg, ""]
            elif msg.startswith(MAINTENANCE_HEADS):
                maintenance_entry(state, ts, msg)
        elif level in ERROR_LEVELS:
            current = [_ERROR, ts, user, db, level, sqlstate, msg, ""]
    if x_sid is not None:
        state.add(x_sid, x_ts, x_duration, x_text, x_params, x_db, x_user, x_app, x_pid, x_qid,
            x_kind)  # fmt: skip
    else:
        kind = current[0]
        if kind != _IGNORED and kind != _NONE:
            _finish(current, state)
    if first_ts:
        aggregate.saw(first_ts)
        aggregate.saw(ts)
    tail = text[pos:]
    if tail and not tail.isspace():
        _bad_lines(tail, state)


def _finish(entry: list[Any], state: ChunkState) -> None:
    kind = entry[0]
    if kind == _LOGGED:
        _, session, ts, duration, query, params, db, user, app, pid, qid, exec_kind = entry
        state.logged_statement(
            session, Execution(ts, duration, query, params, db, user, app, pid, qid, exec_kind)
        )
        return
    _, ts, user, db, level, sqlstate, msg, statement = entry
    if kind == _ERROR:
        state.error(ts, user, db, level, sqlstate, untab(msg), statement)
    elif kind == _TEMP_FILE:
        temp = _TEMP.match(msg)
        if temp is None:
            state.aggregate.bad_input(msg)
        else:
            state.temp_file(ts, user, db, int(temp.group(1)), statement)
    elif kind == _LOCK_WAIT:
        lock = _LOCK.match(msg)
        if lock is not None:
            acquired = lock.group(1) == "acquired"
            state.lock_wait(ts, user, db, float(lock.group(2)), acquired, statement)

"""The stderr format: `PREFIX LEVEL:  message`, continuation lines starting with a tab.

Speed comes from matching whole entries over a multi-megabyte chunk with one compiled
pattern (`finditer` runs in C) and doing the least possible Python work per entry: a few
`startswith` tests, one float conversion, and normalization only through its cache. Lines
the pattern does not explain are the gaps between matches; they are counted as bad input.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from opscope.db.logs.aggregate import Execution
from opscope.db.logs.prefix import CompiledPrefix
from opscope.db.logs.sessions import ChunkState

#: levels of the lines that complete the entry before them
SECONDARY = frozenset(("DETAIL", "STATEMENT", "CONTEXT", "HINT", "QUERY", "LOCATION"))
ERROR_LEVELS = frozenset(("ERROR", "FATAL", "PANIC"))

_LOCK = re.compile(
    r"process \d+ (still waiting|acquired|avoided deadlock|detected deadlock while waiting)"
    r" for .*? after ([\d.]+) ms"
)
_TEMP = re.compile(r'temporary file: path ".*?", size (\d+)')
_SQLSTATE = re.compile(r"([0-9A-Z]{5}): ")
_PLAN_NODE = re.compile(r"  \((?:cost=|actual )|\(never executed\)")
_JSON_QUERY_TEXT = re.compile(r'"Query Text": "((?:[^"\\]|\\.)*)"')

# Entry kinds waiting for their DETAIL/STATEMENT lines.
_EXEC, _LOGGED, _PLAN, _ERROR, _TEMP_FILE, _LOCK_WAIT, _IGNORED = range(7)
_NEEDS_STATEMENT = frozenset((_ERROR, _TEMP_FILE, _LOCK_WAIT))


def untab(text: str) -> str:
    """Continuation lines are written as newline + tab; give back the original text."""
    return text.replace("\n\t", "\n") if "\n\t" in text else text


def epoch_to_text(value: str) -> str:
    try:
        moment = datetime.fromtimestamp(float(value), UTC)
    except (ValueError, OverflowError, OSError):
        return ""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:23] + " UTC"


def split_plan(body: str) -> tuple[str, str]:
    """(query text, plan) of an auto_explain entry, text or JSON format."""
    plan = untab(body).strip()
    if plan.startswith("{") or plan.startswith("["):
        try:
            data = json.loads(plan)
            node = data[0] if isinstance(data, list) else data
            return str(node.get("Query Text", "")), plan
        except (ValueError, AttributeError, IndexError, KeyError):
            m = _JSON_QUERY_TEXT.search(plan)
            return (json.loads(f'"{m.group(1)}"') if m else ""), plan
    if plan.startswith("Query Text: "):
        lines = plan.split("\n")
        for i in range(1, len(lines)):
            if _PLAN_NODE.search(lines[i]):
                return "\n".join(lines[:i])[12:].strip(), "\n".join(lines[i:])
        return lines[0][12:].strip(), "\n".join(lines[1:])
    return "", plan


def parse_stderr(text: str, prefix: CompiledPrefix, state: ChunkState) -> None:
    aggregate = state.aggregate
    epoch = prefix.ts_kind == "epoch"
    indices = prefix.indices
    pos = 0
    # The main entry before the current line, until its DETAIL/STATEMENT lines are read:
    # [kind, session, record-or-None, ts, user, db, level, sqlstate, message, statement, n]
    current: list[object] | None = None
    for m in prefix.entry.finditer(text):
        start = m.start()
        if start != pos:
            gap = text[pos:start]
            if gap.strip():
                aggregate.bad_input(gap, gap.count("\n") or 1)
        pos = m.end() + 1
        ts, pid, user, db, app, qid, sqlstate, session, level, msg = m.group(*indices)
        if level in SECONDARY:
            if current is None:
                aggregate.bad_input(m.group(0))
                continue
            kind = current[0]
            if level == "DETAIL":
                if (kind == _EXEC or kind == _LOGGED) and msg.startswith("parameters: "):  # noqa: SIM109
                    record = current[2]
                    assert isinstance(record, Execution)
                    record.parameters = untab(msg[12:])
            elif level == "STATEMENT" and kind in _NEEDS_STATEMENT:
                current[9] = untab(msg)
            continue
        if current is not None:
            _finish(current, state)
            current = None
        aggregate.entries += 1
        if epoch:
            ts = epoch_to_text(ts)
        if level == "LOG":
            if msg.startswith("duration: "):
                end = msg.find(" ms", 10)
                try:
                    duration = float(msg[10:end])
                except ValueError:
                    aggregate.bad_input(m.group(0))
                    continue
                rest = msg[end + 3 :]
                sid = session or pid
                if rest.startswith("  statement: "):
                    current = [
                        _EXEC,
                        sid,
                        Execution(
                            ts,
                            duration,
                            untab(rest[13:]),
                            None,
                            db,
                            user,
                            app,
                            pid,
                            qid if qid != "0" else "",
                            "statement",
                        ),
                    ]
                elif rest.startswith("  execute "):
                    colon = rest.find(": ", 10)
                    current = [
                        _EXEC,
                        sid,
                        Execution(
                            ts,
                            duration,
                            untab(rest[colon + 2 :]),
                            None,
                            db,
                            user,
                            app,
                            pid,
                            qid if qid != "0" else "",
                            "execute",
                        ),
                    ]
                elif not rest:
                    current = [
                        _EXEC,
                        sid,
                        Execution(
                            ts,
                            duration,
                            "",
                            None,
                            db,
                            user,
                            app,
                            pid,
                            qid if qid != "0" else "",
                            "statement",
                        ),
                    ]
                elif rest.startswith("  plan:"):
                    query, plan = split_plan(rest[7:])
                    state.plan(
                        sid,
                        Execution(
                            ts,
                            duration,
                            query,
                            None,
                            db,
                            user,
                            app,
                            pid,
                            qid if qid != "0" else "",
                            "plan",
                            plan,
                        ),
                    )
                    current = [_IGNORED]
                elif rest.startswith("  parse ") or rest.startswith("  prepare "):
                    aggregate.prepare.add(duration)
                    current = [_IGNORED]
                elif rest.startswith("  bind "):
                    aggregate.bind.add(duration)
                    current = [_IGNORED]
                else:
                    # "fastpath function call" and other forms: an execution all the same.
                    body = rest.lstrip()
                    colon = body.find(": ")
                    current = [
                        _EXEC,
                        sid,
                        Execution(
                            ts,
                            duration,
                            untab(body[colon + 2 :] if colon >= 0 else body),
                            None,
                            db,
                            user,
                            app,
                            pid,
                            qid if qid != "0" else "",
                            "other",
                        ),
                    ]
            elif msg.startswith("statement: "):
                current = [
                    _LOGGED,
                    session or pid,
                    Execution(
                        ts,
                        0.0,
                        untab(msg[11:]),
                        None,
                        db,
                        user,
                        app,
                        pid,
                        qid if qid != "0" else "",
                        "statement",
                    ),
                ]
            elif msg.startswith("execute "):
                colon = msg.find(": ", 8)
                current = [
                    _LOGGED,
                    session or pid,
                    Execution(
                        ts,
                        0.0,
                        untab(msg[colon + 2 :]),
                        None,
                        db,
                        user,
                        app,
                        pid,
                        qid if qid != "0" else "",
                        "execute",
                    ),
                ]
            elif msg.startswith("temporary file: "):
                current = [_TEMP_FILE, "", None, ts, user, db, level, "", msg, "", 0]
            elif msg.startswith("process ") and (
                " waiting " in msg or " acquired " in msg or " deadlock " in msg
            ):
                current = [_LOCK_WAIT, "", None, ts, user, db, level, "", msg, "", 0]
            else:
                current = [_IGNORED]
        elif level in ERROR_LEVELS:
            if not sqlstate and _SQLSTATE.match(msg):
                sqlstate, msg = msg[:5], msg[7:]
            current = [_ERROR, "", None, ts, user, db, level, sqlstate, msg, "", 0]
        else:
            current = [_IGNORED]
    if current is not None:
        _finish(current, state)
    tail = text[pos:]
    if tail.strip():
        aggregate.bad_input(tail, tail.count("\n") or 1)


def _finish(entry: list[object], state: ChunkState) -> None:
    kind = entry[0]
    if kind == _EXEC:
        record = entry[2]
        assert isinstance(record, Execution)
        state.execution(str(entry[1]), record)
    elif kind == _LOGGED:
        record = entry[2]
        assert isinstance(record, Execution)
        state.logged_statement(str(entry[1]), record)
    elif kind == _IGNORED:
        return
    else:
        _, _, _, ts, user, db, level, sqlstate, msg, statement, _ = entry
        assert isinstance(msg, str) and isinstance(statement, str) and isinstance(ts, str)
        assert isinstance(user, str) and isinstance(db, str) and isinstance(level, str)
        assert isinstance(sqlstate, str)
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

"""Events from one complete log record, as csvlog and jsonlog write them.

Unlike stderr, these formats put DETAIL (bind parameters) and STATEMENT (the query of an
error, temp file or lock wait) in fields of the same record, so a record is handled whole.
"""

from __future__ import annotations

from opscope.db.logs.aggregate import Execution
from opscope.db.logs.maintenance import MAINTENANCE_HEADS
from opscope.db.logs.parse_stderr import _LOCK, _TEMP, DURATION, ERROR_LEVELS, split_plan
from opscope.db.logs.sessions import ChunkState, maintenance_entry


def dispatch_record(
    state: ChunkState,
    ts: str,
    pid: str,
    session: str,
    user: str,
    db: str,
    app: str,
    qid: str,
    level: str,
    sqlstate: str,
    message: str,
    detail: str,
    query: str,
    tag: str = "",
) -> None:
    aggregate = state.aggregate
    aggregate.entries += 1
    if qid == "0":
        qid = ""
    sid = session or pid
    if level == "LOG":
        params = detail[12:] if detail.startswith("parameters: ") else None
        if message.startswith("duration: "):
            d = DURATION.match(message)
            if d is None:
                aggregate.bad_input(message)
                return
            duration = float(d.group(1))
            rest = message[d.end() :]
            if rest.startswith("  statement: "):
                state.execution(
                    sid,
                    Execution(
                        ts, duration, rest[13:], params, db, user, app, pid, qid, "statement"
                    ),
                )
            elif rest.startswith("  execute "):
                colon = rest.find(": ", 10)
                state.execution(
                    sid,
                    Execution(
                        ts, duration, rest[colon + 2 :], params, db, user, app, pid, qid, "execute"
                    ),
                )
            elif not rest and tag in ("PARSE", "BIND"):
                # log_duration's parse and bind lines carry no text; the command tag tells.
                (aggregate.prepare if tag == "PARSE" else aggregate.bind).add(duration)
            elif not rest:
                state.execution(
                    sid, Execution(ts, duration, "", None, db, user, app, pid, qid, "statement")
                )
            elif rest.startswith("  plan:"):
                text, plan, plan_params = split_plan(rest[7:])
                state.plan(
                    sid,
                    Execution(
                        ts, duration, text, plan_params, db, user, app, pid, qid, "plan", plan
                    ),
                )
            elif rest.startswith("  parse ") or rest.startswith("  prepare "):
                aggregate.prepare.add(duration)
            elif rest.startswith("  bind "):
                aggregate.bind.add(duration)
            else:
                body = rest.lstrip()
                colon = body.find(": ")
                state.execution(
                    sid,
                    Execution(
                        ts,
                        duration,
                        body[colon + 2 :] if colon >= 0 else body,
                        params,
                        db,
                        user,
                        app,
                        pid,
                        qid,
                        "other",
                    ),
                )
        elif message.startswith("statement: "):
            state.logged_statement(
                sid, Execution(ts, 0.0, message[11:], params, db, user, app, pid, qid, "statement")
            )
        elif message.startswith("execute "):
            colon = message.find(": ", 8)
            state.logged_statement(
                sid,
                Execution(
                    ts, 0.0, message[colon + 2 :], params, db, user, app, pid, qid, "execute"
                ),
            )
        elif message.startswith("disconnection: "):
            state.disconnect(sid)
        elif message.startswith("temporary file: "):
            temp = _TEMP.match(message)
            if temp is None:
                aggregate.bad_input(message)
            else:
                state.temp_file(ts, user, db, int(temp.group(1)), query)
        elif message.startswith("process "):
            lock = _LOCK.match(message)
            if lock is not None:
                acquired = lock.group(1) == "acquired"
                state.lock_wait(ts, user, db, float(lock.group(2)), acquired, query)
        elif message.startswith(MAINTENANCE_HEADS):
            maintenance_entry(state, ts, message)
    elif level in ERROR_LEVELS:
        state.error(ts, user, db, level, sqlstate, message, query)

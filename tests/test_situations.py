"""The situation fixtures make what they say, as the server sees it."""

from __future__ import annotations

import time
from collections.abc import Callable

from conftest import SandboxDb, Session


def _activity(db: SandboxDb, pid: int) -> tuple[str | None, str | None]:
    with db.connect() as conn:
        row = conn.execute(
            "SELECT state, wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()
    return (row[0], row[1]) if row else (None, None)


def test_lock_idle_transaction_and_long_query(
    db: SandboxDb,
    lock_holder: Callable[..., Session],
    idle_in_transaction: Callable[..., Session],
    long_query: Callable[..., Session],
) -> None:
    db.execute("CREATE TABLE t (a int)")
    holder = lock_holder("t")
    with db.connect() as conn:
        mode = conn.execute(
            "SELECT mode FROM pg_locks WHERE pid = %s AND relation = 't'::regclass",
            (holder.pid,),
        ).fetchone()
    assert mode == ("AccessExclusiveLock",)
    holder.release()
    # the backend leaves pg_stat_activity a moment after the client closes
    deadline = time.monotonic() + 10
    while _activity(db, holder.pid) != (None, None) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _activity(db, holder.pid) == (None, None)

    idle = idle_in_transaction("INSERT INTO t VALUES (1)")
    assert _activity(db, idle.pid)[0] == "idle in transaction"
    running = long_query()
    state, wait = _activity(db, running.pid)
    assert state == "active" and wait == "Timeout"  # pg_sleep waits on a timeout
    running.release()
    idle.release()
    with db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)  # rolled back

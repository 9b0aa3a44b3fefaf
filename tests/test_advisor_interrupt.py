"""`indexes advise --verify --apply` stopped by a signal mid-build: what it leaves behind.

Each test holds a transaction open in another session, so CREATE INDEX CONCURRENTLY waits
for it at the end of its build (the index exists, not yet valid), and signals the real
command line there: the timing is the server's, not a sleep's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conftest import SandboxDb, Situations

BUILD = "opscope_verify_orders_customer_id_idx"

#: the build of opscope's session waits for the open transaction's snapshot
WAITING_BUILD = """
    SELECT p.pid FROM pg_stat_progress_create_index p
    WHERE p.relid = 'orders'::regclass AND p.phase = 'waiting for old snapshots'
"""


def orders_workload(db: SandboxDb) -> None:
    db.execute(
        "CREATE TABLE orders (id int PRIMARY KEY, customer_id int, total numeric, note text)",
        "INSERT INTO orders SELECT g, g % 5000, g, 'n' FROM generate_series(1, 60000) g",
        "ANALYZE orders",
        "SELECT pg_stat_reset()",
    )
    with db.connect() as conn:
        for c in range(30):
            conn.execute("SELECT * FROM orders WHERE customer_id = %s", [c]).fetchall()


def indexes_on_orders(db: SandboxDb) -> list[tuple[str, bool]]:
    """The indexes of orders but its primary key: (name, valid)."""
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c"
            " ON c.oid = i.indexrelid WHERE i.indrelid = 'orders'::regclass"
            " AND NOT i.indisprimary ORDER BY 1"
        ).fetchall()
    return [(r[0], r[1]) for r in rows]


@contextmanager
def open_snapshot(db: SandboxDb, *, reading_orders: bool = False) -> Iterator[None]:
    """A transaction holding a snapshot (and, reading orders, a lock on the table) until
    the block ends: a concurrent build waits for the snapshot, a concurrent drop for the
    lock."""
    situation = Situations(db.dsn)
    situation.idle_in_transaction(
        "SELECT count(*) FROM orders" if reading_orders else "SELECT 1",
        isolation="REPEATABLE READ",
    )
    try:
        yield
    finally:
        situation.release_all()


def _default_sigint() -> None:
    # a shell without job control starts its background jobs with SIGINT ignored, and a
    # process keeps an ignored SIGINT ignored (Python then installs no handler for it): the
    # command signalled here takes SIGINT as a terminal would send it, however the tests run
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def opscope(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "opscope", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        preexec_fn=_default_sigint,
    )


def wait_for(db: SandboxDb, proc: subprocess.Popen[str], query: str) -> tuple[Any, ...]:
    """Poll until `query` returns a row; fail at once if the command exits first."""
    deadline = time.monotonic() + 60
    with db.connect() as conn:
        while time.monotonic() < deadline:
            row = conn.execute(query).fetchone()
            if row is not None:
                return tuple(row)
            if proc.poll() is not None:
                _, err = proc.communicate()
                raise AssertionError(f"opscope exited ({proc.returncode}) first: {err}")
            time.sleep(0.05)
    proc.kill()
    proc.communicate()  # reaped, its pipes closed
    raise AssertionError(f"nothing for {query}")


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()  # reaped, its pipes closed: no ResourceWarning in a later test
        raise
    return proc.returncode, err


def verify_apply(db: SandboxDb) -> subprocess.Popen[str]:
    return opscope("indexes", "advise", db.dsn, "--verify", "--apply")


def interrupted_build(db: SandboxDb, signum: signal.Signals) -> tuple[int, str]:
    orders_workload(db)
    with open_snapshot(db):
        proc = verify_apply(db)
        wait_for(db, proc, WAITING_BUILD)
        # half-way: the index exists, not yet valid
        assert indexes_on_orders(db) == [(BUILD, False)]
        proc.send_signal(signum)
        return finish(proc)


def test_sigint_cancels_the_build_and_drops_what_it_left(db: SandboxDb) -> None:
    code, err = interrupted_build(db, signal.SIGINT)
    assert code == 130, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last == (
        "opscope: interrupted by SIGINT: cancelled the build of public.orders_customer_id_idx "
        f"and dropped the INVALID index it left (public.{BUILD})"
    )
    # nothing left, under the temporary name or the final one
    assert indexes_on_orders(db) == []
    with db.connect() as conn:
        # the server's build was cancelled, not left running for the snapshot to end
        assert conn.execute("SELECT count(*) FROM pg_stat_progress_create_index").fetchone() == (0,)


def test_sigterm_takes_the_same_path(db: SandboxDb) -> None:
    code, err = interrupted_build(db, signal.SIGTERM)
    assert code == 143, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "opscope: interrupted by SIGTERM: cancelled the build of public.orders_customer_id_idx "
        f"and dropped the INVALID index it left (public.{BUILD})"
    )
    assert indexes_on_orders(db) == []


def test_a_second_sigint_during_the_drop_says_what_remains(db: SandboxDb) -> None:
    orders_workload(db)
    # the open transaction has read orders: the DROP INDEX CONCURRENTLY of the clean-up
    # waits for its lock too
    with open_snapshot(db, reading_orders=True):
        proc = verify_apply(db)
        wait_for(db, proc, WAITING_BUILD)
        proc.send_signal(signal.SIGINT)
        wait_for(
            db,
            proc,
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'opscope'"
            " AND query LIKE 'DROP INDEX CONCURRENTLY%' AND wait_event_type = 'Lock'",
        )
        proc.send_signal(signal.SIGINT)
        code, err = finish(proc)
        assert code == 130, err
        assert "Traceback" not in err
        drop = f"DROP INDEX CONCURRENTLY IF EXISTS public.{BUILD};"
        assert err.strip().splitlines()[-1] == (
            "opscope: interrupted by SIGINT: interrupted again while dropping the half-built "
            f"public.{BUILD}, which may remain INVALID: run {drop}"
        )
        # no worse than one INVALID index, and the drop was not left waiting on the server
        assert indexes_on_orders(db) == [(BUILD, False)]
        with db.connect() as conn:
            assert conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'opscope'"
            ).fetchone() == (0,)
    # the statement it gave does the rest
    db.execute(drop)
    assert indexes_on_orders(db) == []


def test_indexes_built_before_the_signal_are_kept(db: SandboxDb) -> None:
    # loaded before orders_workload resets the table counters: the load is no workload
    db.execute(
        "CREATE TABLE items (id int PRIMARY KEY, sku int)",
        "INSERT INTO items SELECT g, g % 5000 FROM generate_series(1, 60000) g",
        "ANALYZE items",
    )
    orders_workload(db)
    with db.connect() as conn:
        for c in range(90):
            conn.execute("SELECT * FROM items WHERE sku = %s", [c]).fetchall()
    # a transaction that wrote to orders and stays open: only orders' build waits for it
    # (for its lock; it holds no snapshot between statements), items' is not held up
    writer = Situations(db.dsn).idle_in_transaction("INSERT INTO orders VALUES (-1, 1, 1, 'open')")
    try:
        proc = verify_apply(db)
        wait_for(
            db,
            proc,
            "SELECT pid FROM pg_stat_progress_create_index WHERE relid = 'orders'::regclass"
            " AND phase = 'waiting for writers before build'",
        )
        proc.send_signal(signal.SIGINT)
        # the clean-up's DROP INDEX CONCURRENTLY waits for the same transaction: end it
        wait_for(
            db,
            proc,
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'opscope'"
            " AND query LIKE 'DROP INDEX CONCURRENTLY%' AND wait_event_type = 'Lock'",
        )
        writer.release()
        code, err = finish(proc)
    finally:
        writer.release()
    assert code == 130, err
    # items' index was chosen first (more calls), built and renamed before the signal
    applying = [line for line in err.splitlines() if line.startswith("applying: CREATE")]
    assert [line.split('"')[1] for line in applying] == ["opscope_verify_items_sku_idx", BUILD]
    assert err.strip().splitlines()[-1] == (
        "opscope: interrupted by SIGINT: cancelled the build of public.orders_customer_id_idx "
        f"and dropped the INVALID index it left (public.{BUILD}); kept the index already "
        "built (--apply keeps what it built): public.items_sku_idx"
    )
    assert indexes_on_orders(db) == []
    with db.connect() as conn:
        assert conn.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE c.relname = 'items_sku_idx'"
        ).fetchone() == (True,)


def test_a_killed_run_leaves_an_index_the_next_run_knows_as_its_own(
    db: SandboxDb, tmp_path: Path
) -> None:
    orders_workload(db)
    with open_snapshot(db):
        proc = verify_apply(db)
        [pid] = wait_for(db, proc, WAITING_BUILD)
        proc.kill()  # SIGKILL: no handler runs
        proc.communicate(timeout=30)
        # client_connection_check_interval: the server notices the client is gone and stops
        # the build, instead of finishing it once the snapshot ends
        deadline = time.monotonic() + 30
        with db.connect() as conn:
            while conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
                assert time.monotonic() < deadline, "the build outlived its client"
                time.sleep(0.1)
    assert indexes_on_orders(db) == [(BUILD, False)]
    drop = f"DROP INDEX CONCURRENTLY public.{BUILD};"
    # opscope analyze db: the invalid_index finding says whose it is, and drops it
    proc = opscope(
        "analyze", "db", db.dsn, "--format", "json", env={"OPSCOPE_STATE_DIR": str(tmp_path)}
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    [finding] = [f for f in json.loads(out)["findings"] if f["check"] == "invalid_index"]
    assert finding["object"] == f"public.{BUILD}"
    assert finding["evidence"]["left_by_opscope"] is True
    assert "interrupted opscope indexes advise --verify --apply" in finding["title"]
    assert finding["fix_sql"] == drop
    # opscope indexes advise: a note with the same statement
    proc = opscope("indexes", "advise", db.dsn, "--format", "json")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    notes = next(iter(json.loads(out)["summary"].values()))["advisor"]["notes"]
    assert (
        f"public.{BUILD} is an INVALID index left by an interrupted --verify --apply: {drop}"
        in notes
    )
    db.execute(drop)
    assert indexes_on_orders(db) == []

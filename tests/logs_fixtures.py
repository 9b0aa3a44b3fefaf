"""Real PostgreSQL clusters that log in every format, and the workload they logged.

Each cluster runs a known workload in database `work` (fast statements with literals, a
statement over one second, a prepared statement with parameters, failing statements,
auto_explain'ed statements in text and JSON, a temp-file sort, a lock wait), is stopped so
that its log files are complete, and hands the tests the files plus what was executed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conftest import Situations
from opscope.db.sandbox import Sandbox

CUSTOM_PREFIX = "%m [%p] %q%u@%d app=%a qid=%Q "
PGBADGER_PREFIX = "%t [%p]: user=%u,db=%d,app=%a,client=%h "
LITERAL_RUNS = 20
PREPARED_RUNS = 5
PREPARED_SQL = "select %s::int * 2 as doubled, %s::text as label"
MULTILINE_SQL = "select 1 as a,\n       2 as b\n  where true"


@dataclass
class LoggedWorkload:
    box: Sandbox
    logdir: Path
    #: every statement run in database `work` that the server logs with a duration
    executed: list[str] = field(default_factory=list)
    slow_ms: float = 0.0
    errors: int = 0

    def file(self, suffix: str) -> Path:
        return self.logdir / f"pg.{suffix}"


def _run_workload(box: Sandbox, workload: LoggedWorkload) -> None:
    box.psql("CREATE DATABASE work")
    dsn = box.dsn("work")
    executed = workload.executed
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create table t (id int primary key, v text)")
        executed.append("create table t")
        for k in range(LITERAL_RUNS):
            conn.execute(f"SELECT abs(-{k}) + {k * 7}".encode())
            executed.append("SELECT abs")
        for k in range(PREPARED_RUNS):
            conn.execute(PREPARED_SQL, (k, "it's"), prepare=True)
            executed.append("prepared")
        conn.execute(MULTILINE_SQL.encode())
        executed.append(MULTILINE_SQL)
        started = time.perf_counter()
        conn.execute(b"select pg_sleep(1.1)")
        workload.slow_ms = (time.perf_counter() - started) * 1000
        executed.append("select pg_sleep(1.1)")
        conn.execute(b"set auto_explain.log_format = 'json'")
        executed.append("set")
        conn.execute(b"select pg_sleep(0.25)")
        executed.append("select pg_sleep(0.25)")
        for bad in (b"select 1/0", b"selec oops"):
            try:
                conn.execute(bad)
            except psycopg.Error:
                workload.errors += 1
        conn.execute(b"set work_mem = '64kB'")
        executed.append("set")
        conn.execute(
            b"select count(*) from (select g from generate_series(1, 200000) g order by g desc) s"
        )
        executed.append("sort")
    # A lock wait: the holder keeps the table locked past deadlock_timeout.
    situation = Situations(dsn)
    holder = situation.lock("t")
    # the situation's session asks for its pid first; every statement is logged
    executed += ["SELECT pg_backend_pid()", "BEGIN", "LOCK TABLE t IN ACCESS EXCLUSIVE MODE"]
    with psycopg.connect(dsn, autocommit=True) as waiter:
        thread = threading.Thread(target=lambda: waiter.execute(b"insert into t values (1)"))
        thread.start()
        time.sleep(0.4)
        holder.release()
        executed.append("ROLLBACK")
        thread.join()
        executed.append("insert into t")


#: passwords the `logged_secrets` cluster was given, as its log writes them: in every
#: quoting PostgreSQL takes, with comments, continued, built in a DO block, in user
#: mappings, dblink and subscription conninfos (the first 8 characters tell them apart)
SECRETS = (
    "Hunter1Plain",
    "Hunter2Escape",
    "Hunter3Dollar",
    "Hunter4Unterminated",
    "Hunter5Conn",
    "Hunter6Uri",
    "Hunter7NoSpace",
    "Hunter8Comment",
    "Hunter9Line",
    "Hunter10Uni",
    "Hunter11Esc",
    "Hunter12First",
    "Hunter13Second",
    "Hunter14",
    "Hunter15DoError",
    "Hunter16Mapping",
    "Hunter17Mapping",
    "Hunter18Dblink",
    "Hunter19",
    "Hunter20Param",
    "Hunter21Sub",
    "Hunter22SubUri",
    "Hunter23Hex",
)


def _run_secrets(box: Sandbox, workload: LoggedWorkload) -> None:
    box.psql("CREATE DATABASE work")
    # dblink connects back to this server, over TCP (the sandbox trusts 127.0.0.1)
    server = f"host=127.0.0.1 port={box.port} dbname=work user=postgres"
    with psycopg.connect(box.dsn("work"), autocommit=True) as conn:

        def failing(sql: bytes) -> None:
            try:
                conn.execute(sql)
            except psycopg.Error:
                workload.errors += 1

        conn.execute(b"create role bob login")
        conn.execute(b"alter role bob password 'Hunter1Plain'")
        conn.execute(b"alter role bob password E'Hunter2Escape\\'s'")
        conn.execute(b"alter role bob with password $pw$Hunter3Dollar$pw$")
        failing(b"alter role bob password 'Hunter4Unterminated")
        conn.execute(b"select 'host=x password=Hunter5Conn dbname=y' as conninfo")
        conn.execute(b"select 'postgresql://bob:Hunter6Uri@db.example/work' as uri")
        conn.execute(b"alter role bob password'Hunter7NoSpace'")
        conn.execute(b"alter role bob password /* rotated */ 'Hunter8Comment'")
        conn.execute(b"alter role bob password -- rotated\n'Hunter9Line'")
        conn.execute(b"alter role bob password U&'Hunter10Uni\\00e9'")
        conn.execute(b"alter role bob password U&'Hunter11Esc!00e9' UESCAPE '!'")
        conn.execute(b"alter role bob password 'Hunter12First'\n  'Hunter13Second'")
        conn.execute(
            b"DO $$ begin execute format('alter role bob password %L', 'Hunter14' || 'Built');"
            b" end $$"
        )
        # the server quotes the body's statement in its message: at or near "Hunter15…"
        failing(b"DO $$ begin execute 'alter role bob password Hunter15DoError'; end $$")
        conn.execute(b"create extension postgres_fdw")
        conn.execute(b"create server far foreign data wrapper postgres_fdw options (dbname 'work')")
        conn.execute(
            b"create user mapping for bob server far"
            b" options (user 'bob', password 'Hunter16Mapping')"
        )
        conn.execute(
            b"alter user mapping for bob server far options (set password 'Hunter17Mapping')"
        )
        conn.execute(b"create extension dblink")
        conn.execute(f"select dblink_connect('one', '{server} password=Hunter18Dblink')".encode())
        pieces = f"'{server} password=' || 'Hunter19' || 'Pieces'"
        conn.execute(f"select dblink_exec({pieces}, 'set work_mem = 1024')".encode())
        # bound: logged as $2, with the conninfo in the DETAIL line's parameters
        conn.execute("select dblink_connect(%s, %s)", ("two", f"{server} password=Hunter20Param"))
        conn.execute(b"select dblink_disconnect('one'), dblink_disconnect('two')")
        conn.execute(
            b"create subscription sub connection 'host=127.0.0.1 dbname=nowhere"
            b" password=Hunter21Sub' publication pub with (connect = false)"
        )
        conn.execute(b"alter subscription sub connection 'postgresql://bob:Hunter22SubUri@x/work'")
        conn.execute(b"select E'host=x p\\x61ssword=Hunter23Hex' as conninfo")


def _logging_cluster(
    prefix: str,
    extra: dict[str, str],
    run: Callable[[Sandbox, LoggedWorkload], None] = _run_workload,
) -> Iterator[LoggedWorkload]:
    settings = {
        "logging_collector": "on",
        "log_destination": "'stderr,csvlog,jsonlog'",
        "log_directory": "'log'",
        "log_filename": "'pg.log'",
        "log_line_prefix": f"'{prefix}'",
        "compute_query_id": "on",
        "session_preload_libraries": "'auto_explain'",
        "auto_explain.log_min_duration": "'200ms'",
        "log_temp_files": "0",
        "log_lock_waits": "on",
        "deadlock_timeout": "'100ms'",
        **extra,
    }
    box = Sandbox.create(settings=settings)
    try:
        box.start()
        workload = LoggedWorkload(box, box.datadir / "log")
        run(box, workload)
        # Stopping flushes and closes every log file: the tests read complete files.
        box.stop(remove=False)
        yield workload
    finally:
        box.stop()


@pytest.fixture(scope="session")
def logged() -> Iterator[LoggedWorkload]:
    """log_min_duration_statement = 0: every statement logged with its duration and text."""
    yield from _logging_cluster(CUSTOM_PREFIX, {"log_min_duration_statement": "0"})


@pytest.fixture(scope="session")
def logged_statements() -> Iterator[LoggedWorkload]:
    """log_statement = all: texts are logged first, then duration-only lines."""
    yield from _logging_cluster(
        PGBADGER_PREFIX, {"log_statement": "'all'", "log_min_duration_statement": "0"}
    )


@pytest.fixture(scope="session")
def logged_verbose() -> Iterator[LoggedWorkload]:
    """log_error_verbosity = verbose: every message starts with its SQLSTATE and is followed
    by a LOCATION line."""
    yield from _logging_cluster(
        CUSTOM_PREFIX, {"log_min_duration_statement": "0", "log_error_verbosity": "verbose"}
    )


@pytest.fixture(scope="session")
def logged_secrets() -> Iterator[LoggedWorkload]:
    """Passwords set in every quoting and place the server takes (see SECRETS), two
    statements failing inside their password."""
    yield from _logging_cluster(CUSTOM_PREFIX, {"log_min_duration_statement": "0"}, _run_secrets)


def summary(report: Any) -> dict[str, Any]:
    data: dict[str, Any] = report.summary["log"]
    return data

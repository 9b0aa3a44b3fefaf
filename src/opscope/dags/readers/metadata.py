"""The Airflow metadata database reader: Airflow 2.7 to 2.11 and 3.x, told apart by the
columns of its tables, read through the database area's safe sessions (read-only,
statement and lock timeouts, application_name, a deadline on every answer).

- Airflow 2.7 to 2.9: runs by `execution_date`; earlier tries only from `task_fail` (the
  failed ones, without a try number); one `serialized_dag` per DAG.
- Airflow 2.10 and 2.11: `task_instance_history` holds the earlier tries.
- Airflow 3: runs by `logical_date` (NULL for manual runs) and `run_after`; task instances
  have UUID ids and Airflow 3's `scheduled_dttm`; one `serialized_dag` per `dag_version`,
  and each run names the version it was created with.

Tries are streamed (chunked rows) ordered by DAG and run, and each DAG's runs are handed
on with their tries as soon as the DAG is read, so memory holds one DAG's at a time. Each run
says its place in the order the runs were started (`Run.read_order`): the aggregation counts
them as if read in that order. The aggregation's read (`raw_runs`) is a row a run, its tries
as columns (tries.columns.sql, `opscope.dags.columns`); the others read a row a try.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache, partial
from importlib import resources
from itertools import chain, groupby, islice
from operator import itemgetter
from typing import Any

import psycopg
from psycopg import sql

from opscope.dags.columns import Part, TryColumns
from opscope.dags.model import Dag, Graph, Pipeline, Pool, Run, TaskTry, tries_from_rows
from opscope.dags.readers.serialized import (
    SerializedDagError,
    graph_from_serialized,
    load_serialized,
)
from opscope.db.connection import SqlRunner, raise_if_lost

#: rows fetched per round trip of the server-side cursor (a row a try; for the aggregation a
#: row a run, with all its tries), and round trips fetched ahead
FETCH_ROWS = 20_000
FETCH_RUNS = 200
PREFETCH = 2

#: alembic heads of the Airflow schemas opscope is tested with (2.7.0 and 2.9.0 as Airflow's
#: own migrations make them, 2.10.5, 3.1.8); others are named from their tables
KNOWN_REVISIONS = {
    "405de8318b3a": "2.7",
    "1949afb29106": "2.9",
    "5f2621c13b39": "2.10",
    "509b94a1042d": "3.1",
}


class AirflowSchemaError(Exception):
    """The database holds no Airflow metadata opscope can read; one line."""


@cache
def sql_file(name: str) -> str:
    return resources.files("opscope.dags").joinpath("sql", f"{name}.sql").read_text("utf-8")


@dataclass(frozen=True)
class Schema:
    """What the tables of one metadata database hold."""

    name: str
    columns: dict[str, frozenset[str]]
    revision: str | None = None

    def has(self, table: str, column: str | None = None) -> bool:
        cols = self.columns.get(table)
        return cols is not None and (column is None or column in cols)

    @property
    def major(self) -> int:
        return 3 if self.has("dag_run", "logical_date") or self.has("dag_version") else 2

    @property
    def has_history(self) -> bool:
        return self.has("task_instance_history")

    @property
    def family(self) -> str:
        """'3.1' from a known revision, else '3', '2.10+' or '2.7-2.9' from the tables."""
        if self.revision in KNOWN_REVISIONS:
            return KNOWN_REVISIONS[self.revision]
        if self.major == 3:
            return "3"
        return "2.10+" if self.has_history else "2.7-2.9"


REQUIRED = {
    "dag_run": ("id", "dag_id", "run_id", "state", "start_date", "end_date"),
    "task_instance": ("dag_id", "run_id", "task_id", "map_index", "try_number", "state"),
}


def read_schema(runner: SqlRunner) -> Schema:
    rows = runner.fetch_query(sql.SQL(sql_file("schema")))
    if not rows:
        raise AirflowSchemaError(
            "no Airflow metadata here: table dag_run is not on the session's search_path"
        )
    columns: dict[str, set[str]] = {}
    for row in rows:
        columns.setdefault(row["table_name"], set()).add(row["column_name"])
    schema = Schema(str(rows[0]["schema"]), {t: frozenset(c) for t, c in columns.items()})
    for table, needed in REQUIRED.items():
        missing = [c for c in needed if not schema.has(table, c)]
        if missing:
            raise AirflowSchemaError(
                f"table {table} lacks {', '.join(missing)}: not an Airflow 2.7+ metadata database"
            )
    if not (schema.has("dag_run", "execution_date") or schema.has("dag_run", "logical_date")):
        raise AirflowSchemaError("table dag_run has neither execution_date nor logical_date")
    revision = None
    if schema.has("alembic_version"):
        found = runner.fetch_query(_compose("alembic_version", schema))
        revision = str(found[0]["version_num"]) if found else None
    return Schema(schema.name, schema.columns, revision)


def _parts(schema: Schema) -> dict[str, sql.Composable]:
    three = schema.major == 3
    logical = sql.Identifier("r", "logical_date" if three else "execution_date")
    parts: dict[str, sql.Composable] = {
        "schema": sql.Identifier(schema.name),
        "logical_date": logical,
        "run_after": sql.Identifier("r", "run_after")
        if schema.has("dag_run", "run_after")
        else logical,
        "dag_version": sql.Identifier("r", "created_dag_version_id")
        if schema.has("dag_run", "created_dag_version_id")
        else sql.SQL("NULL::uuid"),
        "ti_scheduled": sql.Identifier("ti", "scheduled_dttm")
        if schema.has("task_instance", "scheduled_dttm")
        else sql.SQL("NULL::timestamptz"),
        "history_scheduled": sql.Identifier("h", "scheduled_dttm")
        if schema.has("task_instance_history", "scheduled_dttm")
        else sql.SQL("NULL::timestamptz"),
    }
    parts["runs"] = sql.SQL(sql_file("selected_runs")).format(
        **{k: v for k, v in parts.items() if k != "runs"}
    )
    return parts


def _compose(name: str, schema: Schema) -> sql.Composed:
    parts = _parts(schema)
    text = sql_file(name)
    return sql.SQL(text).format(**{k: v for k, v in parts.items() if "{" + k + "}" in text})


@dataclass(frozen=True)
class Selection:
    """Which runs to read."""

    dags: Sequence[str] | None = None
    since: datetime | None = None
    max_runs: int = 500

    def params(self) -> dict[str, Any]:
        return {
            "dags": list(self.dags) if self.dags else None,
            "since": self.since,
            "max_runs": self.max_runs,
        }


def _dags(runner: SqlRunner, schema: Schema, selection: Selection) -> dict[str, Dag]:
    params = selection.params()
    slots: dict[str, int | None] = {}
    if schema.has("dag", "max_active_tasks"):
        for row in runner.fetch_query(_compose("dags", schema), params):
            slots[row["dag_id"]] = row["max_active_tasks"]
    graphs: dict[str, dict[str | None, Graph]] = {}
    numbers: dict[str, dict[str, int]] = {}
    if schema.has("serialized_dag"):
        name = (
            "serialized_dags.dag_version"
            if schema.has("serialized_dag", "dag_version_id")
            else ("serialized_dags")
        )
        with runner.conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            runner.queries_sent += 1
            cur.execute(_compose(name, schema), params)
            for row in cur:
                try:
                    graph = graph_from_serialized(
                        load_serialized(row["data"], row["data_compressed"])
                    )
                except (SerializedDagError, ValueError):
                    continue  # a DAG whose graph cannot be read is analysed without it
                graphs.setdefault(row["dag_id"], {})[row["dag_version"]] = graph
                if row["dag_version"] is not None and row["version_number"] is not None:
                    numbers.setdefault(row["dag_id"], {})[row["dag_version"]] = int(
                        row["version_number"]
                    )
    out: dict[str, Dag] = {}
    for dag_id in sorted({*slots, *graphs}):
        out[dag_id] = Dag(
            dag_id, slots.get(dag_id), graphs.get(dag_id, {}), numbers.get(dag_id, {})
        )
    return out


def _pools(runner: SqlRunner, schema: Schema) -> dict[str, Pool]:
    if not schema.has("slot_pool"):
        return {}
    return {
        r["pool"]: Pool(r["pool"], int(r["slots"]))
        for r in runner.fetch_query(_compose("pools", schema))
        if r["slots"] is not None
    }


@dataclass
class MetadataReader:
    """Reads one metadata database through `runner` (a session from
    `opscope.db.connection.connect`)."""

    runner: SqlRunner
    dsn: str
    selection: Selection = field(default_factory=Selection)

    def read(self) -> Pipeline:
        schema = read_schema(self.runner)
        dags = _dags(self.runner, schema, self.selection)
        pools = _pools(self.runner, schema)
        runs = self._runs(schema)
        pipeline = Pipeline(
            source="airflow-db",
            airflow_version=schema.family,
            dags=dags,
            pools=pools,
            runs=(),
            run_count=len(runs),
            by_dag=True,
        )
        if not schema.has_history:
            pipeline.notes.append(
                "Airflow before 2.10 keeps no task_instance_history: earlier tries come from "
                "task_fail (failed tries only)"
            )
        pipeline.runs = self._stream(schema, runs, pipeline, raw=False)
        if schema.has_history:
            pipeline.raw_runs = lambda: self._stream(schema, runs, pipeline, raw=True)
        return pipeline

    def _runs(self, schema: Schema) -> dict[int, Run]:
        runs: dict[int, Run] = {}
        with self.runner.conn.cursor() as cur:
            self.runner.queries_sent += 1
            cur.execute(_compose("runs", schema), self.selection.params())
            for (
                rid,
                dag_id,
                run_id,
                state,
                run_type,
                logical,
                after,
                queued,
                start,
                end,
                version,
            ) in cur:
                runs[rid] = Run(
                    dag_id=dag_id,
                    run_id=run_id,
                    state=state,
                    run_type=run_type,
                    logical_date=logical,
                    run_after=after,
                    queued_at=queued,
                    start=start,
                    end=end,
                    dag_version=version,
                )
        return runs

    def _stream(
        self, schema: Schema, runs: dict[int, Run], pipeline: Pipeline, *, raw: bool
    ) -> Iterator[Run]:
        """Each run with its tries (`raw`: as columns, `Run.columns`), by DAG and then by
        id.

        The server sends the tries by DAG and then by run id, the order of its
        (dag_id, run_id) indexes, so that it sorts nothing (sorting each DAG's rows by run
        was a quarter of its time): a row a try, or with `raw` a row a run; the tries of one
        DAG are held until the next DAG's come, and its runs handed on by id, in the order
        of runs.sql."""
        history = schema.has_history
        # the aggregation's read: a row a run, its tries as columns (tries.columns.sql)
        by_run = raw and history
        query = _compose(
            ("tries.columns" if by_run else "tries") if history else "tries.task_fail", schema
        )
        # the runs in the order they are handed on (by DAG, by id: as the same database
        # sorts them), and each one's place in the order they were started (by id)
        order = list(runs)
        for place, rid in enumerate(sorted(runs)):
            runs[rid].read_order = place
        at = 0
        held: dict[int, Any] = {}  # a run's rows, or its TryColumns
        read = 0

        def hand_on(dag_id: str) -> Iterator[Run]:
            """The runs up to DAG `dag_id`'s last, with the rows held for them: DAGs ordered
            before it have no tries at all. Each run leaves `runs` as it is handed on, so
            that only the runs the analysis keeps stay in memory."""
            nonlocal at, read
            seen = False
            while at < len(order):
                rid = order[at]
                run = runs[rid]
                if run.dag_id == dag_id:
                    seen = True
                elif seen:
                    return
                at += 1
                del runs[rid]
                rows = held.pop(rid, None)
                if rows is None:  # queued, or cleared: no tries
                    yield run
                elif by_run:
                    read += len(rows)
                    run.columns = rows
                    yield run
                else:
                    read += len(rows)
                    yield _assemble(run, rows, history)

        conn = self.runner.conn
        try:
            with conn.transaction(), contextlib.ExitStack() as stack:
                self.runner.queries_sent += 1
                whole = chunked_rows() and in_one_statement(
                    _expected_rows(runs, pipeline), _statement_timeout_ms(self.runner)
                )
                size = FETCH_RUNS if by_run else FETCH_ROWS
                stream = _row_stream(conn, stack, query, self.selection.params(), whole, size)
                dag: str | None = None
                for batch in _prefetched(stream, size):
                    if by_run:
                        for row in batch:
                            key = row[0]
                            dag_id = runs[key].dag_id
                            if dag is not None and dag_id != dag:
                                yield from hand_on(dag)
                            dag = dag_id
                            columns = _columns(row)
                            if columns is not None:
                                held[key] = columns
                        continue
                    for key, group in groupby(batch, _run_key):
                        rows = held.get(key)
                        if rows is not None:  # a run's rows split between two batches
                            rows.extend(group)
                            continue
                        dag_id = runs[key].dag_id
                        if dag is not None and dag_id != dag:
                            yield from hand_on(dag)
                        dag = dag_id
                        held[key] = list(group)
                if dag is not None:
                    yield from hand_on(dag)
                pipeline.tries_read = read
        except psycopg.Error:
            raise_if_lost(conn, self.dsn)
            raise
        for rid in order[at:]:
            yield runs.pop(rid)


_run_key = itemgetter(0)

#: libpq's first version with chunked rows (PQsetChunkedRowsMode)
CHUNKED_ROWS_FROM = 170000


def chunked_rows() -> bool:
    """Whether this libpq streams results in chunks (psycopg's `stream(size=...)`)."""
    return psycopg.pq.version() >= CHUNKED_ROWS_FROM


#: what one row may cost the whole read, the server's join and the client's analysis of
#: it, when the read is one statement (measured: about 3 us a row on two cores)
SECONDS_PER_ROW = 10e-6


def in_one_statement(rows: int, timeout_ms: int) -> bool:
    """Whether reading `rows` in one statement stays well inside `statement_timeout`
    (0: none). Streamed, the read is one statement from its first row to its last, the
    analysis included; through a server-side cursor each FETCH is one, each under the
    timeout, so a history of tens of millions of rows is read that way."""
    return timeout_ms <= 0 or rows * SECONDS_PER_ROW <= timeout_ms / 1000


def _expected_rows(runs: dict[int, Run], pipeline: Pipeline) -> int:
    """About how many tries the runs have: their graphs' tasks (100 where none is known)."""
    total = 0
    for run in runs.values():
        dag = pipeline.dags.get(run.dag_id)
        graph = dag.graph_for(run.dag_version) if dag is not None else None
        total += len(graph.tasks) if graph is not None else 100
    return total


def _statement_timeout_ms(runner: SqlRunner) -> int:
    found = runner.fetch_query(
        sql.SQL("SELECT setting::bigint AS ms FROM pg_settings WHERE name = 'statement_timeout'")
    )
    return int(found[0]["ms"]) if found else 0


def _row_stream(
    conn: psycopg.Connection[Any],
    stack: contextlib.ExitStack,
    query: sql.Composed,
    params: Any,
    whole: bool,
    size: int,
) -> Iterator[tuple[Any, ...]]:
    """The rows of `query`, binary (a quarter less time than text for a million of them).

    `whole`: in one statement, chunked (libpq 17+): the server sends the rows without
    waiting for a FETCH after each batch, as it must for a server-side cursor, so its join
    goes on while the last rows are parsed (a million rows in 1.35 s rather than 1.55 to
    1.8 s). Else through a server-side cursor, a batch a round trip and a statement."""
    if whole:
        cur = stack.enter_context(conn.cursor(binary=True))
        return cur.stream(query, params, size=size)
    named = stack.enter_context(conn.cursor(name="opscope_task_tries", binary=True))
    named.execute(query, params)
    return chain.from_iterable(iter(partial(named.fetchmany, size), []))


def _prefetched(stream: Iterator[Any], size: int) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of `stream` (a cursor's `stream()`), `size` at a time, the next batch read
    by a thread while the caller works on this one: the server's join takes about as long
    as the analysis of what it sends, and they overlap this way. At most PREFETCH batches
    wait. The thread closes the stream when it stops, early or not: closing it cancels
    what the server had left to send (psycopg), on the thread that holds the connection."""
    ready: queue.Queue[list[tuple[Any, ...]] | BaseException] = queue.Queue(PREFETCH)
    stop = threading.Event()

    def fetch() -> None:
        try:
            while not stop.is_set():
                batch = list(islice(stream, size))
                ready.put(batch)
                if not batch:
                    return
        except BaseException as exc:  # handed to the reading thread, which raises it
            ready.put(exc)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()

    worker = threading.Thread(target=fetch, name="opscope-task-tries", daemon=True)
    worker.start()
    try:
        while True:
            item = ready.get()
            if isinstance(item, BaseException):
                raise item
            if not item:
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # a put waiting for room, or a fetch for the server
            with contextlib.suppress(queue.Empty):
                ready.get(timeout=0.05)
        worker.join()


def _columns(row: tuple[Any, ...]) -> TryColumns | None:
    """A run's tries from its row of tries.columns.sql: its id, then the current tries'
    arrays, then the earlier ones' (NULL where it has none)."""
    width = (len(row) - 1) // 2
    parts = [
        Part(tuple(row[lo : lo + width]), earlier)
        for lo, earlier in ((1, False), (1 + width, True))
        if row[lo] is not None
    ]
    return TryColumns(tuple(parts)) if parts else None


def _assemble(run: Run, rows: list[tuple[Any, ...]], history: bool) -> Run:
    if history:
        run.tries.extend(tries_from_rows(rows))
        return run
    current: dict[tuple[str, int], TaskTry] = {}
    earlier: list[tuple[Any, ...]] = []
    tries = run.tries
    for row in rows:
        if row[11]:
            earlier.append(row)
            continue
        t = TaskTry(*row[1:11])
        current[(t.task_id, t.map_index)] = t
        tries.append(t)
    # task_fail: failed tries without numbers; the one that started with the current try is
    # the current try itself
    by_instance: dict[tuple[str, int], list[tuple[Any, ...]]] = {}
    for row in earlier:
        by_instance.setdefault((row[1], row[2]), []).append(row)
    for instance, failed_rows in by_instance.items():
        now = current.get(instance)
        failed = [r for r in failed_rows if now is None or r[9] != now.start]
        failed.sort(key=lambda r: r[9] or 0.0)
        pool = now.pool if now is not None else None
        for number, row in enumerate(failed, start=1):
            tries.append(
                TaskTry(row[1], row[2], number, "failed", pool, 1, None, None, row[9], row[10])
            )
    return run

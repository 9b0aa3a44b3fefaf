"""The import format: task runs of any orchestrator (Dagster, Prefect, Argo, a home-made
scheduler) as JSON or CSV, documented in docs/dags.md.

JSON holds `task_runs` (one object per try) and optionally `dags` (tasks with their
`upstream` tasks, `max_active_tasks`), `pools` and `runs` (a run's own state and times;
without them a run spans its tasks and failed when one of them did). CSV holds task runs
only, one try per line, with the upstream tasks of each task in an `upstream` column.
Times are ISO 8601 (UTC when no offset is given) or seconds since the epoch."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opscope.dags.model import Dag, Graph, Pipeline, Pool, Run, TaskTry
from opscope.dags.readers.metadata import Selection

#: an import file is read whole; beyond this it is refused (use the database reader)
MAX_IMPORT_BYTES = 512 << 20

CSV_COLUMNS = (
    "dag_id",
    "run_id",
    "task_id",
    "state",
    "start",
    "end",
    "map_index",
    "try_number",
    "queued",
    "scheduled",
    "pool",
    "pool_slots",
    "upstream",
    "run_state",
    "dag_version",
)
REQUIRED_COLUMNS = ("dag_id", "run_id", "task_id")


class ImportFormatError(ValueError):
    """The file does not follow the import format; one line naming where."""


def parse_time(value: Any, where: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ImportFormatError(f"{where}: expected a time, got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ImportFormatError(f"{where}: expected a time, got {value!r}")
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ImportFormatError(f"{where}: {text[:40]!r} is not an ISO 8601 time") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    raise ImportFormatError(f"{where}: expected a time, got {type(value).__name__}")


def _int(value: Any, default: int, where: str) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ImportFormatError(f"{where}: expected an integer, got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ImportFormatError(f"{where}: expected an integer, got {str(value)[:40]!r}") from None
    return number


def _text(value: Any, where: str, *, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise ImportFormatError(f"{where}: missing")
        return None
    if not isinstance(value, str):
        raise ImportFormatError(f"{where}: expected text, got {type(value).__name__}")
    return value


def _upstream(value: Any, where: str) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [p.strip() for p in value.split(";") if p.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ImportFormatError(f"{where}: expected a list of task ids")


class _Builder:
    def __init__(self) -> None:
        self.tries: dict[tuple[str, str], list[TaskTry]] = {}
        self.runs: dict[tuple[str, str], Run] = {}
        self.edges: dict[str, set[tuple[str, str]]] = {}
        self.tasks: dict[str, dict[str, None]] = {}
        self.pools_of: dict[str, dict[str, str]] = {}
        self.mapped: dict[str, set[str]] = {}
        self.slots: dict[str, int | None] = {}
        self.pools: dict[str, Pool] = {}
        self.versions: dict[tuple[str, str], str | None] = {}
        self.run_states: dict[tuple[str, str], str] = {}

    def task(self, dag_id: str, task_id: str, upstream: Iterable[str]) -> None:
        self.tasks.setdefault(dag_id, {})[task_id] = None
        for up in upstream:
            self.tasks[dag_id].setdefault(up, None)
            self.edges.setdefault(dag_id, set()).add((up, task_id))

    def add_try(self, record: Mapping[str, Any], where: str) -> None:
        dag_id = _text(record.get("dag_id"), f"{where}: dag_id", required=True)
        run_id = _text(record.get("run_id"), f"{where}: run_id", required=True)
        task_id = _text(record.get("task_id"), f"{where}: task_id", required=True)
        assert dag_id is not None and run_id is not None and task_id is not None
        start = parse_time(record.get("start"), f"{where}: start")
        end = parse_time(record.get("end"), f"{where}: end")
        if start is not None and end is not None and end < start:
            raise ImportFormatError(f"{where}: end is before start")
        pool = _text(record.get("pool"), f"{where}: pool")
        map_index = _int(record.get("map_index"), -1, f"{where}: map_index")
        self.task(dag_id, task_id, _upstream(record.get("upstream"), f"{where}: upstream"))
        if pool:
            self.pools_of.setdefault(dag_id, {})[task_id] = pool
        if map_index >= 0:
            self.mapped.setdefault(dag_id, set()).add(task_id)
        run_state = _text(record.get("run_state"), f"{where}: run_state")
        if run_state:
            self.run_states[(dag_id, run_id)] = run_state
        version = _text(record.get("dag_version"), f"{where}: dag_version")
        if version:
            self.versions[(dag_id, run_id)] = version
        self.tries.setdefault((dag_id, run_id), []).append(
            TaskTry(
                task_id=task_id,
                map_index=map_index,
                try_number=_int(record.get("try_number"), 1, f"{where}: try_number"),
                state=_text(record.get("state"), f"{where}: state"),
                pool=pool,
                pool_slots=max(1, _int(record.get("pool_slots"), 1, f"{where}: pool_slots")),
                scheduled=parse_time(record.get("scheduled"), f"{where}: scheduled"),
                queued=parse_time(record.get("queued"), f"{where}: queued"),
                start=start,
                end=end,
            )
        )

    def pipeline(self, selection: Selection) -> Pipeline:
        wanted = set(selection.dags or ())
        dags: dict[str, Dag] = {}
        for dag_id, tasks in self.tasks.items():
            if wanted and dag_id not in wanted:
                continue
            graph = Graph(
                tasks=tuple(tasks),
                edges=frozenset(self.edges.get(dag_id, ())),
                mapped=frozenset(self.mapped.get(dag_id, ())),
                pools=self.pools_of.get(dag_id, {}),
            )
            dags[dag_id] = Dag(dag_id, self.slots.get(dag_id), {None: graph})
        for key, tries in self.tries.items():
            if key not in self.runs:
                self.runs[key] = _run_of(key, tries, self.run_states.get(key))
            self.runs[key].tries = tries
            self.runs[key].dag_version = self.runs[key].dag_version or self.versions.get(key)
        since = selection.since.timestamp() if selection.since is not None else None
        per_dag: dict[str, list[Run]] = {}
        for (dag_id, _), run in self.runs.items():
            if wanted and dag_id not in wanted:
                continue
            if since is not None and (run.when is None or run.when < since):
                continue
            per_dag.setdefault(dag_id, []).append(run)
        chosen: list[Run] = []
        for dag_id in sorted(per_dag):
            runs = sorted(per_dag[dag_id], key=lambda r: (r.when or 0.0, r.run_id))
            chosen.extend(runs[-selection.max_runs :])
        count = sum(len(r.tries) for r in chosen)
        return Pipeline(
            source="import",
            airflow_version=None,
            dags=dags,
            pools=self.pools,
            runs=chosen,
            run_count=len(chosen),
            tries_read=count,
        )


def _run_of(key: tuple[str, str], tries: list[TaskTry], state: str | None) -> Run:
    starts = [t.start for t in tries if t.start is not None]
    ends = [t.end for t in tries if t.end is not None]
    if state is None:
        final: dict[tuple[str, int], TaskTry] = {}
        for t in tries:
            known = final.get((t.task_id, t.map_index))
            if known is None or t.try_number >= known.try_number:
                final[(t.task_id, t.map_index)] = t
        states = {t.state for t in final.values()}
        if states & {"failed", "upstream_failed"}:
            state = "failed"
        elif states <= {"success", "skipped"}:
            state = "success"
        else:
            state = "running"
    return Run(
        dag_id=key[0],
        run_id=key[1],
        state=state,
        start=min(starts) if starts else None,
        end=max(ends) if ends and state in ("success", "failed") else None,
    )


def _from_json(data: Any, builder: _Builder) -> None:
    if not isinstance(data, dict):
        raise ImportFormatError("the top level must be an object with task_runs")
    unknown = set(data) - {"dags", "pools", "runs", "task_runs", "format"}
    if unknown:
        raise ImportFormatError(f"unknown key {sorted(unknown)[0]!r} at the top level")
    for i, dag in enumerate(data.get("dags") or []):
        where = f"dags[{i}]"
        if not isinstance(dag, dict):
            raise ImportFormatError(f"{where}: expected an object")
        dag_id = _text(dag.get("dag_id"), f"{where}: dag_id", required=True)
        assert dag_id is not None
        limit = dag.get("max_active_tasks")
        builder.slots[dag_id] = (
            None if limit is None else _int(limit, 0, f"{where}: max_active_tasks")
        )
        builder.tasks.setdefault(dag_id, {})
        for j, task in enumerate(dag.get("tasks") or []):
            at = f"{where}.tasks[{j}]"
            if not isinstance(task, dict):
                raise ImportFormatError(f"{at}: expected an object")
            task_id = _text(task.get("task_id"), f"{at}: task_id", required=True)
            assert task_id is not None
            builder.task(dag_id, task_id, _upstream(task.get("upstream"), f"{at}: upstream"))
            pool = _text(task.get("pool"), f"{at}: pool")
            if pool:
                builder.pools_of.setdefault(dag_id, {})[task_id] = pool
            if task.get("mapped") is True:
                builder.mapped.setdefault(dag_id, set()).add(task_id)
    for i, pool in enumerate(data.get("pools") or []):
        where = f"pools[{i}]"
        if not isinstance(pool, dict):
            raise ImportFormatError(f"{where}: expected an object")
        name = _text(pool.get("name"), f"{where}: name", required=True)
        assert name is not None
        builder.pools[name] = Pool(name, _int(pool.get("slots"), 0, f"{where}: slots"))
    for i, run in enumerate(data.get("runs") or []):
        where = f"runs[{i}]"
        if not isinstance(run, dict):
            raise ImportFormatError(f"{where}: expected an object")
        dag_id = _text(run.get("dag_id"), f"{where}: dag_id", required=True)
        run_id = _text(run.get("run_id"), f"{where}: run_id", required=True)
        assert dag_id is not None and run_id is not None
        builder.runs[(dag_id, run_id)] = Run(
            dag_id=dag_id,
            run_id=run_id,
            state=_text(run.get("state"), f"{where}: state"),
            logical_date=parse_time(run.get("logical_date"), f"{where}: logical_date"),
            start=parse_time(run.get("start"), f"{where}: start"),
            end=parse_time(run.get("end"), f"{where}: end"),
            dag_version=_text(run.get("dag_version"), f"{where}: dag_version"),
        )
    task_runs = data.get("task_runs")
    if not isinstance(task_runs, list):
        raise ImportFormatError("task_runs: expected a list of task tries")
    for i, record in enumerate(task_runs):
        if not isinstance(record, dict):
            raise ImportFormatError(f"task_runs[{i}]: expected an object")
        builder.add_try(record, f"task_runs[{i}]")


def _from_csv(text: str, builder: _Builder) -> None:
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ImportFormatError(f"line 1: the header lacks {', '.join(missing)}")
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if unknown:
        raise ImportFormatError(f"line 1: unknown column {unknown[0]!r}")
    for record in reader:
        if None in record:
            raise ImportFormatError(f"line {reader.line_num}: more fields than the header")
        builder.add_try(record, f"line {reader.line_num}")


def parse_import(text: str, fmt: str, selection: Selection | None = None) -> Pipeline:
    """`text` in the import format (`fmt` "json" or "csv") as a pipeline."""
    builder = _Builder()
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ImportFormatError(f"line {exc.lineno}: invalid JSON: {exc.msg}") from None
        _from_json(data, builder)
    elif fmt == "csv":
        try:
            _from_csv(text, builder)
        except csv.Error as exc:
            raise ImportFormatError(f"invalid CSV: {exc}") from None
    else:
        raise ImportFormatError(f"unknown import format {fmt!r} (expected json or csv)")
    return builder.pipeline(selection or Selection())


def read_import(path: Path, selection: Selection | None = None) -> Pipeline:
    """A .json or .csv file in the import format."""
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("json", "csv"):
        raise ImportFormatError(f"{path}: expected a .json or .csv file")
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_IMPORT_BYTES + 1)
    except OSError as exc:
        raise ImportFormatError(f"{path}: {exc.strerror or exc}") from None
    if len(data) > MAX_IMPORT_BYTES:
        raise ImportFormatError(f"{path}: larger than 512 MiB; read the metadata database instead")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportFormatError(f"{path}: not UTF-8 text") from None
    try:
        return parse_import(text, fmt, selection)
    except ImportFormatError as exc:
        raise ImportFormatError(f"{path}: {exc}") from None

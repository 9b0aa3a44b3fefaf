"""Dependency graphs from Airflow's serialized DAGs (`serialized_dag.data`, or zlib
`data_compressed`; the REST API's task list has the same fields)."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from opscope.dags.model import DEFAULT_POOL, Graph

#: a serialized DAG larger than this once decompressed is not read (a zip bomb guard:
#: real ones with thousands of tasks stay well under it)
MAX_SERIALIZED_BYTES = 256 << 20


class SerializedDagError(ValueError):
    pass


def load_serialized(
    data: str | Mapping[str, Any] | None,
    compressed: bytes | None,
    limit: int = MAX_SERIALIZED_BYTES,
) -> Any:
    """The JSON document of a serialized DAG from either column; compressed data that would
    inflate beyond `limit` bytes is refused before it does."""
    if compressed is not None:
        inflater = zlib.decompressobj()
        try:
            raw = inflater.decompress(bytes(compressed), limit)
        except zlib.error as exc:
            raise SerializedDagError(f"data_compressed is not zlib data: {exc}") from None
        if inflater.unconsumed_tail:
            raise SerializedDagError(f"data_compressed inflates beyond {limit:,} bytes")
        return json.loads(raw)
    if data is None:
        raise SerializedDagError("the serialized DAG has neither data nor data_compressed")
    return json.loads(data) if isinstance(data, str) else data


def graph_from_tasks(tasks: Iterable[Mapping[str, Any]]) -> Graph:
    """A graph from task records holding `task_id` and `downstream_task_ids` (and maybe
    `pool`, `_is_mapped`/`is_mapped`, `_needs_expansion`)."""
    order: list[str] = []
    edges: set[tuple[str, str]] = set()
    mapped: set[str] = set()
    pools: dict[str, str] = {}
    for raw in tasks:
        task = raw.get("__var", raw) if isinstance(raw, Mapping) else None
        if not isinstance(task, Mapping) or not isinstance(task.get("task_id"), str):
            continue
        task_id: str = task["task_id"]
        order.append(task_id)
        for down in task.get("downstream_task_ids") or ():
            if isinstance(down, str):
                edges.add((task_id, down))
        if task.get("_is_mapped") or task.get("is_mapped") or task.get("_needs_expansion"):
            mapped.add(task_id)
        pool = task.get("pool")
        if isinstance(pool, str) and pool and pool != DEFAULT_POOL:
            pools[task_id] = pool
    known = set(order)
    return Graph(
        tasks=tuple(order),
        edges=frozenset((a, b) for a, b in edges if a in known and b in known),
        mapped=frozenset(mapped),
        pools=pools,
    )


def graph_from_serialized(document: Any) -> Graph:
    dag = document.get("dag") if isinstance(document, Mapping) else None
    if not isinstance(dag, Mapping):
        raise SerializedDagError("the serialized DAG has no 'dag' object")
    tasks = dag.get("tasks")
    if not isinstance(tasks, list):
        raise SerializedDagError("the serialized DAG has no task list")
    return graph_from_tasks(tasks)

"""The import format (JSON and CSV task runs, docs/dags.md): what it accepts, one clear line
for what it does not, and hypothesis for the parser."""

from __future__ import annotations

import csv
import io
import json
import zlib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opscope.dags.readers.importer import CSV_COLUMNS, ImportFormatError, parse_import
from opscope.dags.readers.metadata import Selection
from opscope.dags.readers.serialized import (
    SerializedDagError,
    graph_from_serialized,
    load_serialized,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC).timestamp()


def test_json_with_dags_runs_and_pools() -> None:
    text = json.dumps(
        {
            "dags": [
                {
                    "dag_id": "etl",
                    "max_active_tasks": 4,
                    "tasks": [
                        {"task_id": "extract"},
                        {"task_id": "load", "upstream": ["extract"], "pool": "db"},
                    ],
                }
            ],
            "pools": [{"name": "db", "slots": 2}],
            "runs": [
                {
                    "dag_id": "etl",
                    "run_id": "r1",
                    "state": "success",
                    "start": "2026-03-01T00:00:00Z",
                    "end": "2026-03-01T00:10:00Z",
                }
            ],
            "task_runs": [
                {
                    "dag_id": "etl",
                    "run_id": "r1",
                    "task_id": "extract",
                    "state": "success",
                    "start": "2026-03-01T00:00:05Z",
                    "end": "2026-03-01T00:04:00Z",
                },
                {
                    "dag_id": "etl",
                    "run_id": "r1",
                    "task_id": "load",
                    "state": "success",
                    "start": T0 + 300,
                    "end": T0 + 590,
                    "queued": T0 + 250,
                    "pool": "db",
                },
            ],
        }
    )
    pipeline = parse_import(text, "json")
    dag = pipeline.dags["etl"]
    graph = dag.graph_for(None)
    assert graph is not None and graph.edges == {("extract", "load")}
    assert dag.max_active_tasks == 4 and graph.pools == {"load": "db"}
    assert pipeline.pools["db"].slots == 2
    (run,) = list(pipeline.runs)
    assert (run.start, run.end, run.state) == (T0, T0 + 600, "success")
    load = next(t for t in run.tries if t.task_id == "load")
    assert (load.queued, load.start, load.pool) == (T0 + 250, T0 + 300, "db")


def test_csv_runs_are_made_from_their_tasks() -> None:
    text = (
        "dag_id,run_id,task_id,state,start,end,upstream,try_number\n"
        "etl,r1,extract,success,2026-03-01T00:00:00,2026-03-01T00:01:00,,1\n"
        "etl,r1,load,failed,2026-03-01T00:01:00,2026-03-01T00:02:00,extract,1\n"
        "etl,r1,load,success,2026-03-01T00:03:00,2026-03-01T00:04:00,extract,2\n"
        "etl,r2,extract,failed,2026-03-02T00:00:00,2026-03-02T00:01:00,,1\n"
    )
    pipeline = parse_import(text, "csv")
    runs = {r.run_id: r for r in pipeline.runs}
    assert runs["r1"].state == "success"  # load's last try succeeded
    assert runs["r1"].start == T0 and runs["r1"].end == T0 + 240
    assert runs["r2"].state == "failed"
    assert len(runs["r1"].tries) == 3


def test_selection_keeps_the_newest_runs_of_the_dags_asked_for() -> None:
    rows = ["dag_id,run_id,task_id,state,start,end"]
    for day in range(5):
        rows.append(f"a,r{day},t,success,{T0 + day * 86400},{T0 + day * 86400 + 60}")
    rows.append(f"b,x,t,success,{T0},{T0 + 1}")
    pipeline = parse_import("\n".join(rows) + "\n", "csv", Selection(dags=["a"], max_runs=2))
    assert [r.run_id for r in pipeline.runs] == ["r3", "r4"]
    assert set(pipeline.dags) == {"a"}
    since = datetime.fromtimestamp(T0 + 86400 * 4, UTC)
    later = parse_import("\n".join(rows) + "\n", "csv", Selection(since=since))
    assert [r.run_id for r in later.runs] == ["r4"]


@pytest.mark.parametrize(
    ("text", "fmt", "message"),
    [
        ("[1, 2]", "json", "the top level must be an object"),
        (
            '{"task_runs": [{"dag_id": "a", "run_id": "r"}]}',
            "json",
            "task_runs[0]: task_id: missing",
        ),
        ('{"task_runs": [], "extra": 1}', "json", "unknown key 'extra'"),
        (
            '{"task_runs": [{"dag_id": "a", "run_id": "r", "task_id": "t", "start": "soon"}]}',
            "json",
            "task_runs[0]: start: 'soon' is not an ISO 8601 time",
        ),
        (
            '{"task_runs": [{"dag_id": "a", "run_id": "r", "task_id": "t", "start": 5, "end": 1}]}',
            "json",
            "end is before start",
        ),
        ("{nope", "json", "line 1: invalid JSON"),
        ("dag_id,run_id\na,b\n", "csv", "the header lacks task_id"),
        ("dag_id,run_id,task_id,colour\na,b,c,d\n", "csv", "unknown column 'colour'"),
        ("dag_id,run_id,task_id\na,b,c,d\n", "csv", "line 2: more fields than the header"),
        (
            "dag_id,run_id,task_id,map_index\na,b,c,x\n",
            "csv",
            "line 2: map_index: expected an integer",
        ),
    ],
)
def test_bad_input_is_one_line_naming_where(text: str, fmt: str, message: str) -> None:
    with pytest.raises(ImportFormatError) as caught:
        parse_import(text, fmt)
    assert message in str(caught.value) and "\n" not in str(caught.value)


names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12
)
times = st.floats(min_value=0, max_value=2e9, allow_nan=False)


@st.composite
def task_runs(draw: st.DrawFn) -> list[dict[str, object]]:
    out = []
    for _ in range(draw(st.integers(min_value=1, max_value=12))):
        start = draw(times)
        out.append(
            {
                "dag_id": draw(names),
                "run_id": draw(names),
                "task_id": draw(names),
                "state": draw(st.sampled_from(["success", "failed", "skipped", "running"])),
                "start": start,
                "end": start + draw(st.floats(min_value=0, max_value=1e5)),
                "map_index": draw(st.integers(min_value=-1, max_value=5)),
                "try_number": draw(st.integers(min_value=1, max_value=4)),
                "pool": draw(st.sampled_from(["", "default_pool", "db"])),
            }
        )
    return out


def _tries(text: str, fmt: str) -> set[tuple[object, ...]]:
    pipeline = parse_import(text, fmt, Selection(max_runs=10**6))
    return {
        (
            r.dag_id,
            r.run_id,
            t.task_id,
            t.state,
            t.start,
            t.end,
            t.map_index,
            t.try_number,
            t.pool or "",
        )
        for r in pipeline.runs
        for t in r.tries
    }


@given(task_runs())
def test_json_and_csv_read_the_same_tries(records: list[dict[str, object]]) -> None:
    as_json = json.dumps({"task_runs": records})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[c for c in CSV_COLUMNS if c in records[0]])
    writer.writeheader()
    writer.writerows(
        {k: repr(v) if isinstance(v, float) else v for k, v in r.items()} for r in records
    )
    expected = {
        (
            r["dag_id"],
            r["run_id"],
            r["task_id"],
            r["state"],
            r["start"],
            r["end"],
            r["map_index"],
            r["try_number"],
            r["pool"],
        )
        for r in records
    }
    assert _tries(as_json, "json") == expected
    assert _tries(buffer.getvalue(), "csv") == expected


@given(st.text(max_size=300), st.sampled_from(["json", "csv"]))
def test_any_text_parses_or_is_refused_in_one_line(text: str, fmt: str) -> None:
    try:
        parse_import(text, fmt)
    except ImportFormatError as exc:
        assert "\n" not in str(exc)


def test_serialized_dags_in_both_columns_and_a_zip_bomb() -> None:
    document = {
        "__version": 1,
        "dag": {
            "tasks": [
                {
                    "__var": {"task_id": "a", "downstream_task_ids": ["b"], "pool": "db"},
                    "__type": "operator",
                },
                {"task_id": "b", "_is_mapped": True},
            ]
        },
    }
    text = json.dumps(document)
    for loaded in (
        load_serialized(text, None),
        load_serialized(None, zlib.compress(text.encode())),
    ):
        graph = graph_from_serialized(loaded)
        assert graph.tasks == ("a", "b") and graph.edges == {("a", "b")}
        assert graph.mapped == {"b"} and graph.pools == {"a": "db"}
    packer = zlib.compressobj()
    bomb = b"".join(packer.compress(bytes(1 << 20)) for _ in range(4)) + packer.flush()
    with pytest.raises(SerializedDagError, match="inflates beyond 1,048,576 bytes"):
        load_serialized(None, bomb, limit=1 << 20)
    with pytest.raises(SerializedDagError, match="not zlib data"):
        load_serialized(None, b"not zlib")
    with pytest.raises(SerializedDagError, match="no 'dag' object"):
        graph_from_serialized({"__version": 1})

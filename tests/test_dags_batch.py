"""The aggregation's fast path (numpy over the metadata reader's rows) against the plain one
(`facts_of` and `_add_run` run by run) on generated histories: every figure the checks read
must be the same, bit for bit, whatever the tries, graphs, states, pools and batch sizes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dags_figures import dag_figures, figures
from opscope.dags import aggregate as aggregate_module
from opscope.dags import batch as batch_module
from opscope.dags.aggregate import aggregate
from opscope.dags.columns import TryColumns
from opscope.dags.context import Prepared, prepare
from opscope.dags.figures import DagStats
from opscope.dags.model import Dag, Graph, Pipeline, Pool, Run

TASKS = ("a", "b", "c", "d", "e")
STATES = ("success", "failed", "up_for_retry", "running", None)
POOLS = (None, "", "default_pool", "narrow")

times = st.one_of(st.none(), st.integers(0, 40).map(lambda x: x / 2))


@st.composite
def graphs(draw: st.DrawFn) -> Graph:
    n = draw(st.integers(1, len(TASKS)))
    tasks = TASKS[:n]
    edges = {(tasks[i], tasks[j]) for i in range(n) for j in range(i + 1, n) if draw(st.booleans())}
    pools = {t: "narrow" for t in tasks if draw(st.integers(0, 4)) == 0}
    return Graph(tasks, frozenset(edges), frozenset(), pools)


@st.composite
def rows_of(draw: st.DrawFn, graph: Graph) -> list[tuple[Any, ...]]:
    """The reader's rows of one run: current tries, then earlier ones (some of them copies
    of a current try), and now and then a task the graph does not have."""
    names = [*graph.tasks, *(["extra"] if draw(st.integers(0, 9)) == 0 else [])]
    current: list[tuple[Any, ...]] = []
    earlier: list[tuple[Any, ...]] = []
    for task in names:
        for map_index in draw(st.sampled_from([[], [-1], [-1], [-1], [0, 1]])):
            number = draw(st.integers(1, 3))
            start = draw(times)
            end = None if start is None else draw(st.one_of(st.none(), times))
            row = (
                0,
                task,
                map_index,
                number,
                draw(st.sampled_from(STATES)),
                draw(st.sampled_from(POOLS)),
                draw(st.integers(0, 2)),
                draw(times),
                draw(times),
                start,
                end,
                False,
            )
            current.append(row)
            for k in range(1, number + (draw(st.integers(0, 3)) == 0)):
                s = draw(times)
                earlier.append(
                    (
                        0,
                        task,
                        map_index,
                        k,
                        "failed",
                        row[5],
                        1,
                        None,
                        draw(times),
                        s,
                        s and s + 1,
                        True,
                    )
                )
    return current + earlier


@st.composite
def histories(draw: st.DrawFn) -> tuple[dict[str, Dag], list[dict[str, Any]]]:
    dags: dict[str, Dag] = {}
    for name in ("x", "y")[: draw(st.integers(1, 2))]:
        versions: dict[str | None, Graph] = {"v1": draw(graphs()), "v2": draw(graphs())}
        dags[name] = Dag(name, 4, versions, {"v1": 1, "v2": 2})
    runs: list[dict[str, Any]] = []
    for k in range(draw(st.integers(1, 14))):
        dag = dags[draw(st.sampled_from(sorted(dags)))]
        version = draw(st.sampled_from(["v1", "v2", "v3"]))  # v3: unknown, the newest graph
        start = draw(times)
        runs.append(
            {
                "dag_id": dag.dag_id,
                "run_id": f"r{k}",
                "state": draw(st.sampled_from(["success", "success", "failed", "running"])),
                "start": start,
                "end": None if start is None else draw(times),
                "run_after": draw(times),
                "dag_version": version,
                "rows": draw(rows_of(dag.graph_for(version) or Graph(()))),
            }
        )
    return dags, runs


def _pipeline(dags: dict[str, Dag], specs: list[dict[str, Any]], raw: bool) -> Pipeline:
    def runs() -> Iterator[Run]:
        for spec in specs:
            run = Run(**{k: v for k, v in spec.items() if k != "rows"})
            run.columns = TryColumns.from_rows(spec["rows"]) if spec["rows"] else None
            if not raw:
                run.load_tries()
            yield run

    pipeline = Pipeline("airflow-db", "3.1", dags, {"narrow": Pool("narrow", 1)}, runs())
    if raw:
        pipeline.raw_runs = runs
    return pipeline


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    histories(),
    st.sampled_from([1, 2, 256]),
    st.sampled_from([5, 200_000]),
    st.integers(0, 3),
    st.sampled_from([1, 4]),
)
def test_the_fast_path_gives_the_plain_paths_figures(
    history: tuple[dict[str, Dag], list[dict[str, Any]]],
    batch_runs: int,
    batch_rows: int,
    keep: int,
    worth: int,
) -> None:
    """`worth` 1: a batch checks its runs against every path one of them took (up to
    SHARED_PATHS), so that the shared paths beyond the first are exercised too."""
    dags, specs = history
    plain = aggregate(_pipeline(dags, specs, raw=False), keep_runs=keep)
    saved = aggregate_module.BATCH_RUNS, aggregate_module.BATCH_ROWS, batch_module.WORTH_A_CHECK
    aggregate_module.BATCH_RUNS, aggregate_module.BATCH_ROWS = batch_runs, batch_rows
    batch_module.WORTH_A_CHECK = worth
    try:
        fast = aggregate(_pipeline(dags, specs, raw=True), keep_runs=keep)
    finally:
        aggregate_module.BATCH_RUNS, aggregate_module.BATCH_ROWS = saved[:2]
        batch_module.WORTH_A_CHECK = saved[2]
    assert figures(fast) == figures(plain)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.booleans())
def test_a_dag_is_handed_on_once_all_its_runs_are_counted(
    history: tuple[dict[str, Dag], list[dict[str, Any]]], by_dag: bool
) -> None:
    """With the runs coming DAG by DAG (the metadata reader's order), each DAG but the last
    is handed to `counted` with its figures final, and what `prepare` works out of it then
    changes none of them; in another order, none is handed on."""
    dags, specs = history
    specs = sorted(specs, key=lambda spec: spec["dag_id"])
    handed: dict[str, Any] = {}

    def counted(stats: DagStats) -> None:
        prepare(stats, Prepared())
        handed[stats.dag_id] = dag_figures(stats)

    pipeline = _pipeline(dags, specs, raw=True)
    pipeline.by_dag = by_dag
    analysis = aggregate(pipeline, keep_runs=2, counted=counted)
    read = list(dict.fromkeys(spec["dag_id"] for spec in specs))
    assert list(handed) == (read[:-1] if by_dag else [])
    for dag_id, seen in handed.items():
        assert seen == dag_figures(analysis.dags[dag_id])
    plain = aggregate(_pipeline(dags, specs, raw=False), keep_runs=2)
    assert figures(analysis) == figures(plain)

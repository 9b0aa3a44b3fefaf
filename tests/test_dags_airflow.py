"""The integration tier for pipelines: Airflow 2.10 and 3.1 in venvs of their own (built and
cached by airflow_tier/venvs.py), a metadata database in the test cluster migrated by each,
and the DAGs of airflow_tier/dags run by a real scheduler on the LocalExecutor. opscope's
readers and checks are held to what those DAGs did: their sleeps, their critical paths, the
failing task, the retried one, the mapped one; the REST readers to each version's real API
server. A cold run builds the venvs and runs the DAGs (see the README for how long); a warm
one restores the cached metadata."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from airflow_tier.deployment import PASSWORD, USER, Deployment
from airflow_tier.expected import (
    CRITICAL,
    DAG_IDS,
    EDGES,
    FAILED_RUNS,
    FAILED_SLACK_S,
    FAILING_TASK,
    MAPPED,
    NARROW_POOL,
    NEVER_RAN,
    RETRIED,
    SLACK_S,
    SLEEPS,
)
from airflow_tier.venvs import ensure_venv
from dags_figures import figures
from opscope.dags import context as context_module
from opscope.dags.aggregate import aggregate
from opscope.dags.analyze import analyze_dags
from opscope.dags.figures import DagStats
from opscope.dags.model import Graph, Pipeline, Run, TaskTry
from opscope.dags.readers import metadata
from opscope.dags.readers.metadata import MetadataReader
from opscope.dags.readers.rest import RestError, RestReader
from opscope.dags.runs import facts_of
from opscope.dags.settings import DagsSettings, DagThresholds, dags_config
from opscope.dags.source import DB, URL, DagSource
from opscope.db.connection import SqlRunner, connect
from opscope.db.sandbox import Sandbox
from opscope.db.settings import SessionSettings
from opscope.findings import Report

pytestmark = pytest.mark.integration
EMPTY = Graph(tasks=())


def read_db(airflow: Deployment) -> tuple[Pipeline, list[Run]]:
    conn = connect(airflow.dsn, SessionSettings())
    try:
        pipeline = MetadataReader(SqlRunner(conn), airflow.dsn).read()
        runs = list(pipeline.runs)
    finally:
        conn.close()
    return pipeline, runs


def test_the_fast_path_gives_the_plain_figures_on_real_metadata(airflow: Deployment) -> None:
    """analyze dags reads the tries as rows and counts them in numpy; counted one run at a
    time through facts_of, the same metadata must give the same figures."""

    def analysed(raw: bool) -> Any:
        conn = connect(airflow.dsn, SessionSettings())
        try:
            pipeline = MetadataReader(SqlRunner(conn), airflow.dsn).read()
            assert pipeline.raw_runs is not None
            if not raw:
                pipeline.raw_runs = None
            return figures(aggregate(pipeline))
        finally:
            conn.close()

    assert analysed(raw=True) == analysed(raw=False)


def test_a_libpq_without_chunked_rows_reads_the_same(
    airflow: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tries are streamed in chunks where libpq can (17+, as psycopg's wheels bundle),
    else through a server-side cursor: both read the same runs and tries."""
    assert metadata.chunked_rows()  # so the first read below takes the chunked way
    _, chunked = read_db(airflow)
    monkeypatch.setattr(metadata, "chunked_rows", lambda: False)
    _, by_cursor = read_db(airflow)
    assert chunked and any(run.tries for run in chunked)

    def tries(runs: list[Run]) -> list[tuple[str, str, list[TaskTry]]]:
        # the order of a run's rows is the plan's (the query orders runs, not tries)
        return [(r.dag_id, r.run_id, sorted(r.tries, key=_instance)) for r in runs]

    assert tries(chunked) == tries(by_cursor)


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "by-cursor"])
def test_the_aggregations_read_by_run_gives_the_same_tries(
    airflow: Deployment, monkeypatch: pytest.MonkeyPatch, chunked: bool
) -> None:
    """The aggregation reads a row a run, its tries as arrays (tries.columns.sql); made
    tries, they are the tries the row a try read gives, run by run."""
    monkeypatch.setattr(metadata, "chunked_rows", lambda: chunked)
    conn = connect(airflow.dsn, SessionSettings())
    try:
        pipeline = MetadataReader(SqlRunner(conn), airflow.dsn).read()
        assert pipeline.raw_runs is not None
        by_run = list(pipeline.raw_runs())
    finally:
        conn.close()
    _, by_row = read_db(airflow)
    assert any(run.columns is not None for run in by_run)
    for run in by_run:
        run.load_tries()

    def tries(runs: list[Run]) -> list[tuple[str, str, list[TaskTry]]]:
        return [(r.dag_id, r.run_id, sorted(r.tries, key=_instance)) for r in runs]

    assert tries(by_run) == tries(by_row)
    assert any(len(r.tries) > 1 for r in by_run)


def test_a_history_too_long_for_one_statement_is_read_a_fetch_at_a_time() -> None:
    """Streamed, the whole read is one statement under statement_timeout; a long history
    goes through the server-side cursor, whose every FETCH has the whole timeout."""
    assert metadata.in_one_statement(1_000_000, 30_000)
    assert not metadata.in_one_statement(20_000_000, 30_000)
    assert metadata.in_one_statement(20_000_000, 0)  # no timeout


def _instance(t: TaskTry) -> tuple[str, int, int]:
    return t.task_id, t.map_index, t.try_number


def _by_dag(runs: list[Run]) -> dict[str, Run]:
    assert sorted(r.dag_id for r in runs) == sorted(DAG_IDS), [r.dag_id for r in runs]
    return {r.dag_id: r for r in runs}


def test_the_metadata_reader_reads_what_was_run(airflow: Deployment) -> None:
    pipeline, runs = read_db(airflow)
    assert pipeline.airflow_version == ("3.1" if airflow.major == 3 else "2.10")
    by_dag = _by_dag(runs)
    for dag_id, run in by_dag.items():
        assert run.state == ("failed" if dag_id in FAILED_RUNS else "success"), dag_id
        graph = pipeline.dags[dag_id].graph_for(run.dag_version)
        assert graph is not None and graph.edges == EDGES[dag_id], dag_id
        if airflow.major == 3:
            # manual runs of Airflow 3 have no logical date, a run_after and a DAG version
            assert run.logical_date is None and run.run_after is not None
            assert run.dag_version in pipeline.dags[dag_id].graphs
        else:
            assert run.logical_date is not None and run.dag_version is None
        facts = facts_of(run, graph)
        for task_id, sleep in SLEEPS[dag_id].items():
            task = facts.tasks[task_id]
            slack = FAILED_SLACK_S if task.state == "failed" else SLACK_S
            assert sleep <= task.span <= sleep + slack + (sleep + slack) * (task.retries), (
                dag_id,
                task_id,
                task.span,
            )
            assert task.start is not None and task.end is not None
        # every task's time lies inside the run's
        assert run.start is not None and run.end is not None
        for t in run.tries:
            if t.start is not None and t.end is not None:
                assert run.start <= t.start <= t.end <= run.end + 1
    task_id, count = MAPPED["opscope_mapped"]
    mapped = [t for t in by_dag["opscope_mapped"].tries if t.task_id == task_id]
    assert sorted(t.map_index for t in mapped) == list(range(count))
    assert pipeline.dags["opscope_mapped"].graph_for(None) is not None
    assert task_id in (pipeline.dags["opscope_mapped"].graph_for(None) or EMPTY).mapped
    assert all(t.duration >= 1 for t in mapped)
    dag_id, task_id, delay = RETRIED
    tries = sorted(
        (t for t in by_dag[dag_id].tries if t.task_id == task_id), key=lambda t: t.try_number
    )
    assert [(t.try_number, t.state) for t in tries] == [(1, "failed"), (2, "success")]
    assert tries[0].end is not None and tries[1].start is not None
    assert tries[1].start - tries[0].end >= delay
    failing = {t.task_id: t.state for t in by_dag[FAILING_TASK[0]].tries}
    assert failing[FAILING_TASK[1]] == "failed" and failing[NEVER_RAN[1]] == "upstream_failed"
    narrow = [t for t in by_dag[NARROW_POOL[0]].tries if t.pool == NARROW_POOL[0]]
    assert len(narrow) == 3
    spans = sorted((t.start, t.end) for t in narrow if t.start and t.end)
    # one slot: they ran one after the other
    assert all(a[1] <= b[0] + 0.05 for a, b in itertools.pairwise(spans))


SENSITIVE = DagsSettings(
    thresholds=DagThresholds(
        min_runs=1,
        retries_cost_s=0.5,
        pool_saturation_wait_s=0.5,
        low_parallelism_speedup=1.25,
    )
)


def _analyze(source: DagSource) -> Report:
    return analyze_dags(dags_config(SENSITIVE), source, name="airflow")


def test_the_dags_prepared_during_the_read_change_no_finding(
    airflow: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the reader finishes each DAG, what the checks will ask of it is worked out while
    the next is read (`prepare`): the findings are those the checks make without it."""
    calls: list[str] = []
    real = context_module.prepare

    def counting(stats: DagStats, *args: Any) -> None:
        calls.append(stats.dag_id)
        real(stats, *args)

    monkeypatch.setattr("opscope.dags.analyze.prepare", counting)
    prepared = _analyze(DagSource(DB, airflow.dsn))
    assert len(calls) == len(DAG_IDS) - 1  # every DAG but the last, finished with the read
    monkeypatch.setattr("opscope.dags.analyze.prepare", lambda *args: None)
    plain = _analyze(DagSource(DB, airflow.dsn))
    assert [f.model_dump(mode="json") for f in prepared.findings] == [
        f.model_dump(mode="json") for f in plain.findings
    ]
    assert any(
        f.check == "critical_path" and "expected_s_at_half" in f.evidence for f in plain.findings
    )


def _found(report: Report, check: str) -> dict[str, dict[str, object]]:
    return {f.object: dict(f.evidence) for f in report.findings if f.check == check}


def test_analyze_dags_reports_what_was_run(airflow: Deployment) -> None:
    report = _analyze(DagSource(DB, airflow.dsn))
    assert report.errors == []
    paths = _found(report, "critical_path")
    assert set(paths) == set(DAG_IDS) - FAILED_RUNS
    for dag_id, tasks in CRITICAL.items():
        assert paths[dag_id]["tasks"] == tasks, dag_id
        slack = paths[dag_id]["slack_s"]
        assert isinstance(slack, dict) and all(slack[t] == 0 for t in tasks)
    # the short branch could have taken longer, by the difference of the two branches' spans
    # as they ran (by design 2 s; less when Airflow was slow to start the short one), without
    # delaying the run
    pipeline, runs = read_db(airflow)
    parallel = _by_dag(runs)["opscope_parallel"]
    ran = facts_of(parallel, pipeline.dags[parallel.dag_id].graph_for(parallel.dag_version))
    gap = ran.tasks["branch_long"].span - ran.tasks["branch_short"].span
    parallel_slack = paths["opscope_parallel"]["slack_s"]
    assert isinstance(parallel_slack, dict) and gap > 0
    assert parallel_slack["branch_short"] == pytest.approx(gap, abs=0.002)
    narrow = paths["opscope_narrow"]["tasks"]
    assert isinstance(narrow, list) and narrow[-1] == "gather" and len(narrow) == 2
    failures = _found(report, "dag_failures")
    assert set(failures) == {FAILING_TASK[0]}
    assert failures[FAILING_TASK[0]]["failing_tasks"] == {FAILING_TASK[1]: 1}
    retries = _found(report, "task_retries_cost")
    dag_id, task_id, delay = RETRIED
    assert set(retries) == {f"{dag_id}.{task_id}"}
    lost = retries[f"{dag_id}.{task_id}"]["time_lost_s"]
    assert isinstance(lost, float) and lost >= 1 + delay  # the failed 1 s try and the delay
    parallelism = _found(report, "low_parallelism")
    assert NARROW_POOL[0] in parallelism
    assert parallelism[NARROW_POOL[0]]["pool"] == NARROW_POOL[0]
    assert parallelism[NARROW_POOL[0]]["slots_used"] == NARROW_POOL[1]
    assert "opscope_chain" not in parallelism  # a pure chain never gets it
    saturated = _found(report, "pool_saturation")
    assert set(saturated) == {f"pool:{NARROW_POOL[0]}"}
    assert saturated[f"pool:{NARROW_POOL[0]}"]["slots"] == NARROW_POOL[1]
    summary = report.summary["airflow"]
    assert summary["runs"] == len(DAG_IDS) and summary["dags"] == len(DAG_IDS)
    assert {c["dag_id"] for c in summary["gantt"]} == set(DAG_IDS)


def test_the_rest_reader_reads_what_the_database_holds(
    airflow: Deployment, airflow_api: str
) -> None:
    _, db_runs = read_db(airflow)
    with httpx.Client(timeout=60) as client:
        reader = RestReader(client, airflow_api, username=USER, password=PASSWORD)
        pipeline = reader.read()
        rest_runs = list(pipeline.runs)
    assert reader.api == ("v2" if airflow.major == 3 else "v1")
    assert pipeline.airflow_version == airflow.version

    def tries(runs: list[Run]) -> dict[tuple[str, ...], tuple[float | None, float | None]]:
        return {
            (r.dag_id, r.run_id, t.task_id, str(t.map_index), str(t.try_number), str(t.state)): (
                None if t.start is None else round(t.start, 3),
                None if t.end is None else round(t.end, 3),
            )
            for r in runs
            for t in r.tries
        }

    assert tries(rest_runs) == tries(db_runs)
    for dag_id in DAG_IDS:
        graph = pipeline.dags[dag_id].graph_for(None)
        assert graph is not None and graph.edges == EDGES[dag_id]
    rest = _analyze(DagSource(URL, airflow_api, username=USER, password=PASSWORD))
    db = _analyze(DagSource(DB, airflow.dsn))
    assert _found(rest, "critical_path") == _found(db, "critical_path")


def test_the_rest_reader_refuses_a_wrong_password(airflow: Deployment, airflow_api: str) -> None:
    with httpx.Client(timeout=60) as client, pytest.raises(RestError, match="refused"):
        RestReader(client, airflow_api, username=USER, password="wrong").read()


def test_the_rest_commands_with_a_token_or_credentials_in_the_url(
    airflow: Deployment, airflow_api: str, tmp_path: Path
) -> None:
    url = airflow_api.replace("http://", f"http://{USER}:{PASSWORD}@")
    done = _opscope("analyze", "dags", "--airflow-url", url, "-f", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    data = json.loads(done.stdout)
    assert data["targets"][0]["server_version"] == airflow.version
    assert {f["object"] for f in data["findings"] if f["check"] == "critical_path"} == (
        set(DAG_IDS) - FAILED_RUNS
    )
    if airflow.major < 3:
        return  # Airflow 2's API takes basic auth; tokens are Airflow 3's
    token = httpx.post(
        f"{airflow_api}/auth/token", json={"username": USER, "password": PASSWORD}, timeout=60
    ).json()["access_token"]
    env = {"OPSCOPE_AIRFLOW_TOKEN": token}
    with_token = _opscope(
        "dags",
        "simulate",
        "opscope_narrow",
        "--airflow-url",
        airflow_api,
        "--slots",
        "3",
        cwd=tmp_path,
        env=env,
    )
    assert with_token.returncode == 0, with_token.stderr
    assert "expected duration" in with_token.stdout
    refused = _opscope(
        "analyze",
        "dags",
        "--airflow-url",
        airflow_api,
        cwd=tmp_path,
        env={"OPSCOPE_AIRFLOW_TOKEN": "not-a-token"},
    )
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"opscope: error: {airflow_api} refused the credentials")
    assert "not-a-token" not in refused.stderr


def test_the_metadata_session_is_read_only(airflow: Deployment) -> None:
    """analyze_dags reads through the session factory it is given (the database area's
    `connect` by default), whose sessions refuse to write."""
    opened: list[tuple[str, str]] = []

    def recording(
        dsn: str, session: SessionSettings, *, writable: bool = False
    ) -> psycopg.Connection[Any]:
        conn = connect(dsn, session, writable=writable)
        row = conn.execute(
            "SELECT current_setting('default_transaction_read_only'), "
            "current_setting('application_name')"
        ).fetchone()
        assert row is not None
        opened.append((str(row[0]), str(row[1])))
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("DELETE FROM dag_run")
        return conn

    report = analyze_dags(dags_config(), DagSource(DB, airflow.dsn), connect=recording)
    assert opened == [("on", "opscope")]
    assert report.summary[report.targets[0].name]["runs"] == len(DAG_IDS)


def _opscope(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPSCOPE_STATE_DIR": str(cwd), "COLUMNS": "120", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "opscope", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=env,
    )


def test_the_commands_on_a_real_metadata_database(airflow: Deployment, tmp_path: Path) -> None:
    report = _opscope("analyze", "dags", "--airflow-db", airflow.dsn, "-f", "json", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    checks = {f["check"] for f in data["findings"]}
    assert {"critical_path", "dag_failures"} <= checks
    html = _opscope(
        "analyze",
        "dags",
        "--airflow-db",
        airflow.dsn,
        "--dag",
        "opscope_parallel",
        "-o",
        str(tmp_path / "r.html"),
        cwd=tmp_path,
    )
    assert html.returncode == 0, html.stderr
    page = (tmp_path / "r.html").read_text()
    assert page.count('<svg class="gantt"') == 1 and 'class="critical"' in page
    sim = _opscope(
        "dags",
        "simulate",
        "opscope_narrow",
        "--airflow-db",
        airflow.dsn,
        "--slots",
        "3",
        "-f",
        "json",
        cwd=tmp_path,
    )
    assert sim.returncode == 0, sim.stderr
    result = json.loads(sim.stdout)
    # three 1 s tasks on one slot, then on three: about 2 s less
    assert result["baseline_s"] - result["expected_s"] >= 1.5
    typo = _opscope(
        "dags",
        "simulate",
        "opscope_narrow",
        "--airflow-db",
        airflow.dsn,
        "--task",
        "lft=1s",
        cwd=tmp_path,
    )
    assert typo.returncode == 2
    assert typo.stderr.strip().splitlines() == [
        "opscope: error: DAG 'opscope_narrow' has no task 'lft' in its recent runs"
    ]


def test_the_oldest_schema_read_has_no_history_but_task_fail(
    cluster: Sandbox, tmp_path: Path
) -> None:
    """Airflow 2.7's schema, made by Airflow's own migrations (`db migrate --to-version`
    from the 2.10.5 venv), with rows written as 2.7 writes them: earlier tries only in
    task_fail, without a try number (and the current try there too when it failed), the
    serialized DAG in zlib `data_compressed`."""
    spec = ensure_venv("2.10.5")
    cluster.psql("CREATE DATABASE airflow_2_7")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON"))}
    env.update(
        AIRFLOW_HOME=str(tmp_path),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=(
            f"postgresql+psycopg2://postgres@127.0.0.1:{cluster.port}/airflow_2_7"
        ),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
    )
    migrated = subprocess.run(
        [str(spec.bin / "airflow"), "db", "migrate", "--to-version", "2.7.0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    document = {
        "__version": 1,
        "dag": {
            "_dag_id": "legacy",
            "tasks": [
                {
                    "__var": {"task_id": "a", "downstream_task_ids": ["b", "c"]},
                    "__type": "operator",
                },
                {"__var": {"task_id": "b"}, "__type": "operator"},
                {"__var": {"task_id": "c"}, "__type": "operator"},
            ],
        },
    }
    dsn = cluster.dsn("airflow_2_7")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO dag (dag_id, max_active_tasks, has_task_concurrency_limits, is_paused)"
            " VALUES ('legacy', 16, false, false)"
        )
        conn.execute(
            "INSERT INTO serialized_dag (dag_id, fileloc, fileloc_hash, last_updated, dag_hash,"
            " data, data_compressed) VALUES ('legacy', '/dags/legacy.py', 0, now(), 'h', NULL, %s)",
            (zlib.compress(json.dumps(document).encode()),),
        )
        conn.execute(
            "INSERT INTO dag_run (dag_id, execution_date, run_id, run_type, state, start_date,"
            " end_date) VALUES ('legacy', '2026-01-01T00:00Z', 'manual__1', 'manual', 'failed',"
            " '2026-01-01T00:00:00Z', '2026-01-01T00:10:00Z')"
        )
        rows = [
            ("a", 1, "success", "00:00:10", "00:01:00"),
            ("b", 3, "success", "00:05:00", "00:06:00"),  # after two failed tries
            ("c", 1, "failed", "00:01:10", "00:02:00"),  # failed, no retry
        ]
        for task, number, state, start, end in rows:
            conn.execute(
                "INSERT INTO task_instance (task_id, dag_id, run_id, map_index, try_number, state,"
                " pool, pool_slots, start_date, end_date) VALUES (%s, 'legacy', 'manual__1', -1,"
                " %s, %s, 'default_pool', 1, %s::timestamptz, %s::timestamptz)",
                (task, number, state, f"2026-01-01T{start}Z", f"2026-01-01T{end}Z"),
            )
        for task, start, end in [
            ("b", "00:01:05", "00:01:30"),
            ("b", "00:03:00", "00:03:30"),
            ("c", "00:01:10", "00:02:00"),  # the current try of c itself
        ]:
            conn.execute(
                "INSERT INTO task_fail (task_id, dag_id, run_id, map_index, start_date, end_date)"
                " VALUES (%s, 'legacy', 'manual__1', -1, %s::timestamptz, %s::timestamptz)",
                (task, f"2026-01-01T{start}Z", f"2026-01-01T{end}Z"),
            )
    conn2 = connect(dsn, SessionSettings())
    try:
        pipeline = MetadataReader(SqlRunner(conn2), dsn).read()
        (run,) = list(pipeline.runs)
    finally:
        conn2.close()
    assert pipeline.airflow_version == "2.7"
    assert any("task_fail" in note for note in pipeline.notes)
    graph = pipeline.dags["legacy"].graph_for(None)
    assert graph is not None and graph.edges == {("a", "b"), ("a", "c")}
    assert run.logical_date == run.start  # execution_date
    tries = sorted((t.task_id, t.try_number, t.state) for t in run.tries)
    assert tries == [
        ("a", 1, "success"),
        ("b", 1, "failed"),
        ("b", 2, "failed"),
        ("b", 3, "success"),
        ("c", 1, "failed"),
    ]
    report = analyze_dags(dags_config(SENSITIVE), DagSource(DB, dsn), name="legacy")
    retries = _found(report, "task_retries_cost")
    assert retries["legacy.b"]["retries"] == 2
    assert retries["legacy.b"]["time_lost_s"] == 235.0  # 00:01:05 to 00:05:00
    assert _found(report, "dag_failures")["legacy"]["failing_tasks"] == {"c": 1}


def test_opscope_check_runs_the_pipeline_analysis_of_a_configured_deployment(
    airflow: Deployment, tmp_path: Path
) -> None:
    cfg = tmp_path / "opscope.yaml"
    cfg.write_text(f"airflow:\n  prod:\n    db: {airflow.dsn}\n")
    proc = _opscope("check", "-c", str(cfg), "-f", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert {"kind": "dags", "name": "prod"}.items() <= data["targets"][0].items()
    assert {"critical_path", "dag_failures"} <= {f["check"] for f in data["findings"]}

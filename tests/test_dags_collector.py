"""The Airflow runs collector of `opscope serve`: its tally directly (each finished run counted
once, a re-run again, what can no longer be read forgotten, the document the store keeps);
a metadata database that is not there, or holds no Airflow, is a failed run that says so
with `opscope_airflow_up 0`; and (integration tier) the real service on a real Airflow
metadata database, a run added while it watches, and a restart that goes on counting."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from pydantic import SecretStr

from airflow_tier.deployment import PASSWORD, USER, Deployment
from airflow_tier.expected import DAG_IDS, FAILED_RUNS, RETRIED
from conftest import SandboxDb
from opscope.config import Config
from opscope.dags.collector import DagsCollector, families
from opscope.dags.model import Run, TaskTry
from opscope.dags.settings import AirflowTarget, AirflowTargets, DagsSettings
from opscope.dags.tally import OVERLAP_S, Active, RunTally
from opscope.db.sandbox import free_port
from opscope.findings import utc_now
from opscope.monitor.collector import CollectContext, CollectorError
from serve_process import ServeProcess, write_config

SERVE_DOC = Path(__file__).resolve().parent.parent / "docs" / "serve.md"


def _try(task: str, number: int, state: str, map_index: int = -1) -> TaskTry:
    return TaskTry(task, map_index, number, state, None, 1, None, None, 0.0, 1.0)


def _run(
    dag: str, run_id: str, state: str, start: float, end: float | None, *tries: TaskTry
) -> Run:
    return Run(dag, run_id, state, start=start, end=end, queued_at=start, tries=list(tries))


def test_each_finished_run_counts_once_and_a_rerun_again() -> None:
    tally = RunTally()
    assert tally.since() is None  # the first read takes what the history settings allow
    first = [
        _run("chain", "r1", "success", 100.0, 110.0, _try("load", 1, "success")),
        _run(
            "failing",
            "r1",
            "failed",
            100.0,
            120.0,
            _try("explode", 1, "failed"),
            _try("explode", 2, "failed"),
            _try("after", 0, "upstream_failed"),
        ),
    ]
    tally.add(first, 200.0, ["chain", "failing", "idle"])
    assert tally.dags["chain"].runs == {"success": 1}
    assert tally.dags["failing"].runs == {"failed": 1}
    assert (tally.dags["failing"].task_failures, tally.dags["failing"].task_retries) == (2, 1)
    # the trap: a DAG without failures, and one without runs, count nothing
    assert (tally.dags["chain"].task_failures, tally.dags["chain"].task_retries) == (0, 0)
    assert tally.dags["idle"].runs == {} and tally.dags["idle"].last is None
    since = tally.since()
    assert since is not None and since.timestamp() == 200.0 - OVERLAP_S
    # the same runs read again (the overlap): nothing counted twice
    tally.add(first, 260.0)
    assert tally.dags["chain"].runs == {"success": 1}
    assert tally.dags["failing"].task_failures == 2
    # a run still going is active, and the next read starts at its start
    going = _run("chain", "r2", "running", 250.0, None, _try("load", 1, "running"))
    active = tally.add([going], 300.0)
    assert active.runs == {("chain", "running"): 1}
    assert active.tasks == {("chain", "running"): 1}
    since = tally.since()
    assert since is not None and since.timestamp() == 250.0 - OVERLAP_S
    # it finished: counted, and it is the DAG's last run
    tally.add([_run("chain", "r2", "failed", 250.0, 320.0, _try("load", 1, "failed"))], 400.0)
    chain = tally.dags["chain"]
    assert chain.runs == {"success": 1, "failed": 1} and chain.task_failures == 1
    assert chain.last is not None and (chain.last.state, chain.last.end) == ("failed", 320.0)
    assert chain.last.duration == 70.0 and chain.last_success_end == 110.0
    # cleared and run again: it ends again, and counts again
    tally.add([_run("chain", "r2", "success", 450.0, 470.0)], 500.0)
    assert chain.runs == {"success": 2, "failed": 1} and chain.last_success_end == 470.0


def test_runs_that_cannot_be_read_again_are_forgotten_and_the_document_round_trips() -> None:
    tally = RunTally()
    tally.add([_run("chain", f"r{i}", "success", 10.0 * i, 10.0 * i + 5) for i in range(100)], 990)
    # the next read starts at 990 - OVERLAP_S: only the runs placed after it are kept
    assert sorted(v for v in tally.counted.values()) == [10.0 * i for i in range(39, 100)]
    tally.add([_run("chain", "late", "running", 2000.0, None)], 3000.0)
    assert tally.pending and not tally.counted  # nothing counted is placed after 1400 any more
    again = RunTally.from_doc(json.loads(json.dumps(tally.to_doc())))
    assert again == tally
    assert again.dags["chain"].runs == {"success": 100}


def test_every_dag_gets_every_series_and_zero_where_nothing_happened() -> None:
    tally = RunTally()
    active = tally.add(
        [_run("failing", "r1", "failed", 0.0, 8.0, _try("explode", 1, "failed"))],
        10.0,
        ["failing", "chain"],
    )
    fam = families("prod", tally, active, 20.0, 0.1)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in [*fam.stored, *fam.exposed]
        for s in f.samples
    }

    def value(name: str, **labels: str) -> float | None:
        return samples.get((name, tuple(sorted({"target": "prod", **labels}.items()))))

    assert value("opscope_dag_runs_total", dag_id="failing", state="failed") == 1.0
    assert value("opscope_dag_runs_total", dag_id="chain", state="failed") == 0.0
    assert value("opscope_dag_task_failures_total", dag_id="chain") == 0.0
    assert value("opscope_dag_runs_active", dag_id="chain", state="running") == 0.0
    assert value("opscope_dag_last_run_failed", dag_id="failing") == 1.0
    assert value("opscope_dag_last_run_age_seconds", dag_id="failing") == 12.0
    assert value("opscope_dag_last_run_duration_seconds", dag_id="failing") == 8.0
    assert value("opscope_dag_last_run_failed", dag_id="chain") is None  # it never ran
    assert value("opscope_dag_last_success_timestamp_seconds", dag_id="failing") is None
    assert all(key != "run_id" for (_, pairs) in samples for key, _ in pairs)
    assert isinstance(active, Active) and active.read == 1
    # every sample is documented, by its full name
    served = SERVE_DOC.read_text()
    for name, _ in samples:
        assert f"`{name}`" in served, f"{name} is not in docs/serve.md"
    # the mostly-zero and the derived families are exposed, not stored as series
    assert {f.name for f in fam.exposed} == {
        "opscope_dag_tasks_active",
        "opscope_dag_last_run_age_seconds",
    }


def _config(**targets: AirflowTarget) -> Config:
    return Config(sections={"airflow": AirflowTargets(targets), "dags": DagsSettings()})


def _context() -> CollectContext:
    return CollectContext(history=None, clock=utc_now)


def test_a_missing_or_wrong_database_is_a_failed_run_saying_why(db: SandboxDb) -> None:
    gone = f"postgresql://opscope:secret-pw@127.0.0.1:{free_port()}/airflow"
    collector = DagsCollector(_config(prod=AirflowTarget(db=gone)), "prod")
    with pytest.raises(CollectorError) as down:
        collector.collect(_context())
    assert "cannot connect" in str(down.value) and "secret-pw" not in str(down.value)
    assert down.value.collection is not None
    [up] = down.value.collection.metrics
    assert [(s.name, s.labels, s.value) for s in up.samples] == [
        ("opscope_airflow_up", {"target": "prod"}, 0.0)
    ]
    empty = DagsCollector(_config(prod=AirflowTarget(db=db.dsn)), "prod")
    with pytest.raises(CollectorError, match="no Airflow metadata here"):
        empty.collect(_context())


# --- the integration tier: the real service on a real metadata database ----------------------


def _columns(conn: psycopg.Connection[tuple[object, ...]], table: str) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return [str(r[0]) for r in rows]


def _copy_row(
    conn: psycopg.Connection[tuple[object, ...]],
    table: str,
    where: sql.Composable,
    overrides: dict[str, sql.Composable],
    skip: tuple[str, ...] = (),
) -> None:
    """INSERT a copy of one row of `table` with some columns replaced: Airflow's own rows
    carry every NOT NULL column its version needs."""
    columns = [c for c in _columns(conn, table) if c not in skip]
    values = [overrides.get(c, sql.Identifier(c)) for c in columns]
    conn.execute(
        sql.SQL("INSERT INTO {t} ({cols}) SELECT {vals} FROM {t} WHERE {where} LIMIT 1").format(
            t=sql.Identifier(table),
            cols=sql.SQL(", ").join(map(sql.Identifier, columns)),
            vals=sql.SQL(", ").join(values),
            where=where,
        )
    )


def _add_failed_run(dsn: str, dag_id: str, task_id: str, run_id: str) -> None:
    """A run of `dag_id` that failed a moment ago, with one failed try of `task_id`: one
    transaction, as Airflow writes a run that has ended, so that a collection never sees
    the run without its try (it would count the run, once, with no failed task)."""
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        dag_run = _columns(conn, "dag_run")
        now = sql.SQL("now()")
        overrides: dict[str, sql.Composable] = {
            "run_id": sql.Literal(run_id),
            "state": sql.Literal("failed"),
            "queued_at": sql.SQL("now() - interval '6 seconds'"),
            "start_date": sql.SQL("now() - interval '5 seconds'"),
            "end_date": now,
        }
        for dated in ("execution_date", "logical_date", "run_after", "data_interval_start"):
            if dated in dag_run:
                overrides[dated] = now
        if "data_interval_end" in dag_run:
            overrides["data_interval_end"] = now
        _copy_row(
            conn, "dag_run", sql.SQL("dag_id = {}").format(sql.Literal(dag_id)), overrides, ("id",)
        )
        ti = _columns(conn, "task_instance")
        ti_overrides: dict[str, sql.Composable] = {
            "run_id": sql.Literal(run_id),
            "state": sql.Literal("failed"),
            "try_number": sql.Literal(1),
            "start_date": sql.SQL("now() - interval '4 seconds'"),
            "end_date": now,
        }
        if "id" in ti:
            ti_overrides["id"] = sql.SQL("gen_random_uuid()")
        _copy_row(
            conn,
            "task_instance",
            sql.SQL("dag_id = {} AND task_id = {}").format(
                sql.Literal(dag_id), sql.Literal(task_id)
            ),
            ti_overrides,
        )


@pytest.mark.integration
def test_the_service_counts_the_runs_of_a_real_deployment(
    airflow: Deployment, tmp_path: Path
) -> None:
    dsn = airflow.copy("collect_" + airflow.version.replace(".", "_"))
    path = write_config(
        tmp_path / "opscope.yaml",
        {
            "airflow": {"af": {"db": dsn}},
            "serve": {
                "store": str(tmp_path / "store.db"),
                "interval_s": 0.5,
                # its findings are the pipeline tests' business: only the collector runs
                "collectors": {"analysis/dags/af": {"enabled": False}},
            },
        },
    )
    service = ServeProcess(path, tmp_path).start()
    try:
        service.wait_for(lambda: service.collector("dags/af")["runs"] >= 2, "no collection")
        assert service.collector("dags/af")["up"], service.collector("dags/af")
        assert service.value("opscope_airflow_up", target="af") == 1.0
        (failing,) = FAILED_RUNS
        for dag_id in DAG_IDS:
            failed = service.value("opscope_dag_runs_total", dag_id=dag_id, state="failed")
            success = service.value("opscope_dag_runs_total", dag_id=dag_id, state="success")
            # each DAG ran once; the trap: those that did not fail count 0 failed runs
            assert (failed, success) == ((1.0, 0.0) if dag_id == failing else (0.0, 1.0))
        assert service.value("opscope_dag_task_failures_total", dag_id=failing) == 1.0
        assert service.value("opscope_dag_task_failures_total", dag_id="opscope_chain") == 0.0
        assert service.value("opscope_dag_task_retries_total", dag_id=RETRIED[0]) == 1.0
        assert service.value("opscope_dag_task_retries_total", dag_id="opscope_chain") == 0.0
        assert service.value("opscope_dag_last_run_failed", dag_id=failing) == 1.0
        assert service.value("opscope_dag_last_run_failed", dag_id="opscope_chain") == 0.0
        chain_s = service.value("opscope_dag_last_run_duration_seconds", dag_id="opscope_chain")
        assert chain_s is not None and chain_s >= 4.0  # its tasks sleep 1 + 2 + 1 s
        assert (
            service.value("opscope_dag_runs_active", dag_id="opscope_chain", state="running") == 0
        )

        # a run fails while the service watches: the next collection counts it, once
        _add_failed_run(dsn, "opscope_chain", "load", "manual__opscope_collector_test")
        service.wait_for(
            lambda: (
                service.value("opscope_dag_runs_total", dag_id="opscope_chain", state="failed")
                == 1.0
            ),
            "the new failed run was never counted",
        )
        runs = service.collector("dags/af")["runs"]
        service.wait_for(lambda: service.collector("dags/af")["runs"] >= runs + 3, "stalled")
        assert service.value("opscope_dag_runs_total", dag_id="opscope_chain", state="failed") == 1
        assert service.value("opscope_dag_runs_total", dag_id="opscope_chain", state="success") == 1
        assert service.value("opscope_dag_task_failures_total", dag_id="opscope_chain") == 1.0
        assert service.value("opscope_dag_last_run_failed", dag_id="opscope_chain") == 1.0
        # and the store keeps the series
        [series] = service.json(
            "/api/v1/series",
            name="opscope_dag_runs_total",
            match=["dag_id=opscope_chain", "state=failed"],
        )
        values = [p[1] for p in series["points"]]
        assert values[0] == 0.0 and values[-1] == 1.0 and values == sorted(values)
    finally:
        assert service.stop() == 0, service.output()

    # a restart goes on from the stored tally: nothing is counted twice
    again = ServeProcess(path, tmp_path).start()
    try:
        again.wait_for(lambda: again.collector("dags/af")["runs"] >= 2, "no collection")
        assert again.value("opscope_dag_runs_total", dag_id="opscope_chain", state="failed") == 1
        assert again.value("opscope_dag_runs_total", dag_id=failing, state="failed") == 1.0
        read = again.value("opscope_airflow_collection_runs", target="af")
        # only the window since the last collection is read: at most the DAGs' runs of the
        # last minutes and the added one
        assert read is not None and read <= len(DAG_IDS) + 1
    finally:
        assert again.stop() == 0, again.output()


@pytest.mark.integration
def test_the_rest_api_gives_the_collector_what_the_database_gives(
    airflow: Deployment, airflow_api: str
) -> None:
    def counted(target: AirflowTarget) -> dict[str, object]:
        collector = DagsCollector(_config(af=target), "af")
        collection = collector.collect(_context())
        # a second collection reads from where the first stopped, and counts nothing again
        again = collector.collect(_context())
        assert collection.snapshots["dags.runs/1"]["dags"] == again.snapshots["dags.runs/1"]["dags"]
        # the same instants, whichever way they came (epoch floats, ISO text)
        dags: dict[str, object] = json.loads(
            json.dumps(again.snapshots["dags.runs/1"]["dags"]),
            parse_float=lambda text: round(float(text), 3),
        )
        return dags

    from_db = counted(AirflowTarget(db=airflow.dsn))
    from_rest = counted(AirflowTarget(url=airflow_api, username=USER, password=SecretStr(PASSWORD)))
    assert set(from_db) == set(DAG_IDS)
    assert from_rest == from_db

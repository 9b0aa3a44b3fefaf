"""The pipeline checks on histories made for them (the import format: a file is the one
input that needs no Airflow), through `analyze_dags` and the CLI; the real Airflow runs are
test_dags_airflow.py's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import SandboxDb
from opscope.dags.analyze import analyze_dags
from opscope.dags.settings import DagsSettings, DagThresholds, dags_config
from opscope.dags.source import IMPORT, DagSource
from opscope.findings import Report, Severity
from opscope.report import render

DAY = 86400.0
T0 = 1_780_000_000.0


def _history(path: Path, runs: int = 12, slow_from: int = 6) -> Path:
    """etl: extract (60 s) -> transform -> load (30 s), daily; transform takes 300 s, then
    600 s from run `slow_from` on, which is also the first run of DAG version v2. Each task
    is queued 20 s after its upstream ends and starts 40 s later."""
    task_runs: list[dict[str, Any]] = []
    meta_runs = []
    for i in range(runs):
        start = T0 + i * DAY
        at = start
        for task, took in (
            ("extract", 60.0),
            ("transform", 600.0 if i >= slow_from else 300.0),
            ("load", 30.0),
        ):
            queued = at + 20
            begin = queued + 40
            task_runs.append(
                {
                    "dag_id": "etl",
                    "run_id": f"r{i}",
                    "task_id": task,
                    "state": "success",
                    "queued": queued,
                    "start": begin,
                    "end": begin + took,
                }
            )
            at = begin + took
        meta_runs.append(
            {
                "dag_id": "etl",
                "run_id": f"r{i}",
                "state": "success",
                "start": start,
                "end": at,
                "dag_version": "v2" if i >= slow_from else "v1",
            }
        )
    data = {
        "dags": [
            {
                "dag_id": "etl",
                "tasks": [
                    {"task_id": "extract"},
                    {"task_id": "transform", "upstream": ["extract"]},
                    {"task_id": "load", "upstream": ["transform"]},
                ],
            }
        ],
        "runs": meta_runs,
        "task_runs": task_runs,
    }
    path.write_text(json.dumps(data))
    return path


def _analyze(path: Path, **thresholds: Any) -> Report:
    settings = DagsSettings(thresholds=DagThresholds(**thresholds))
    return analyze_dags(dags_config(settings), DagSource(IMPORT, str(path)), name="etl-history")


def _one(report: Report, check: str) -> dict[str, Any]:
    (finding,) = [f for f in report.findings if f.check == check]
    return {"finding": finding, **finding.evidence}


def test_a_regression_at_a_new_dag_version_names_the_task_that_grew(tmp_path: Path) -> None:
    report = _analyze(_history(tmp_path / "h.json"))
    found = _one(report, "dag_duration_regression")
    assert found["changed_at"] == "2026-06-03T20:26:40Z"  # the first run of v2
    assert found["dag_version_before"] == "v1" and found["dag_version_after"] == "v2"
    assert found["runs_before"] == 6 and found["runs_after"] == 6
    assert found["median_before_s"] == 570.0 and found["median_after_s"] == 870.0
    assert list(found["tasks_grew_s"]) == ["transform"]
    assert found["tasks_grew_s"]["transform"] == 300.0
    assert "transform" in found["finding"].recommendation


def test_no_regression_without_a_change(tmp_path: Path) -> None:
    report = _analyze(_history(tmp_path / "h.json", slow_from=99))
    assert not [f for f in report.findings if f.check == "dag_duration_regression"]


def test_slow_dag_slow_task_and_the_critical_path(tmp_path: Path) -> None:
    report = _analyze(_history(tmp_path / "h.json"), slow_dag_s=600, slow_task_s=500)
    slow = _one(report, "slow_dag")
    assert slow["runs"] == 12 and slow["p50_s"] == 720.0 and slow["max_s"] == 870.0
    assert slow["trend_s_per_day"] > 0
    task = _one(report, "slow_task")
    assert task["finding"].object == "etl.transform" and task["critical_share"] == 1.0
    # a chain: every task is critical, none has slack, and no parallelism is missing
    path = _one(report, "critical_path")
    assert path["tasks"] == ["extract", "transform", "load"]
    assert path["critical_share"] == {"extract": 1.0, "load": 1.0, "transform": 1.0}
    assert set(path["slack_s"].values()) == {0.0}
    assert "opscope dags simulate etl --task transform=50%" in path["finding"].recommendation
    assert not [f for f in report.findings if f.check == "low_parallelism"]


def test_queue_wait_splits_to_queue_and_in_queue(tmp_path: Path) -> None:
    report = _analyze(_history(tmp_path / "h.json"), queue_wait_s=60, queue_wait_share=0.1)
    found = _one(report, "queue_wait")
    assert found["critical_wait_p50_s"] == 180.0  # three tasks waiting 60 s each
    assert found["per_task"]["transform"] == {
        "to_queue_p50_s": 20.0,
        "in_queue_p50_s": 40.0,
        "wait_p95_s": 60.0,
    }
    assert found["per_pool"] == {"default_pool": {"to_queue_mean_s": 20.0, "in_queue_mean_s": 40.0}}
    assert "executor" in found["finding"].recommendation  # queued longer than to be queued


def _fan(path: Path, runs: int, fail_every: int = 0) -> Path:
    """wide: four 100 s tasks that could run side by side, run one at a time (a DAG with
    max_active_tasks 1), then a join; every `fail_every`-th run the join fails."""
    tries = []
    meta = []
    for i in range(runs):
        start = T0 + i * DAY
        for k in range(4):
            tries.append(
                {
                    "dag_id": "wide",
                    "run_id": f"r{i}",
                    "task_id": f"p{k}",
                    "state": "success",
                    "start": start + k * 100,
                    "end": start + (k + 1) * 100,
                }
            )
        failed = bool(fail_every) and i % fail_every == 0
        tries.append(
            {
                "dag_id": "wide",
                "run_id": f"r{i}",
                "task_id": "join",
                "state": "failed" if failed else "success",
                "start": start + 400,
                "end": start + 410,
                "upstream": "p0;p1;p2;p3",
            }
        )
        meta.append(
            {
                "dag_id": "wide",
                "run_id": f"r{i}",
                "start": start,
                "end": start + 410,
                "state": "failed" if failed else "success",
            }
        )
    data = {"dags": [{"dag_id": "wide", "max_active_tasks": 1}], "runs": meta, "task_runs": tries}
    path.write_text(json.dumps(data))
    return path


def test_low_parallelism_says_which_limit_to_raise(tmp_path: Path) -> None:
    report = _analyze(_fan(tmp_path / "w.json", 4))
    found = _one(report, "low_parallelism")
    assert found["slots_used"] == 1 and found["max_active_tasks"] == 1
    assert found["critical_path_s"] == 110.0 and found["task_time_s"] == 410.0
    assert found["enough_slots"] == 4 and found["expected_s"] == 110.0
    assert found["time_saved_ms"] == 300_000.0
    assert "Raise max_active_tasks of wide from 1 to 4" in found["finding"].recommendation
    assert "opscope dags simulate wide --slots 4" in found["finding"].recommendation


def test_failures_critical_over_half(tmp_path: Path) -> None:
    report = _analyze(_fan(tmp_path / "w.json", 4, fail_every=2))
    found = _one(report, "dag_failures")
    assert found["failed_runs"] == 2 and found["failure_rate"] == 0.5
    assert found["failing_tasks"] == {"join": 2}
    assert found["finding"].severity == Severity.critical


def test_every_renderer_draws_the_gantt(tmp_path: Path) -> None:
    report = _analyze(_fan(tmp_path / "w.json", 2))
    html = render(report, "html")
    assert html.count('<svg class="gantt"') == 1  # the latest run is also the slowest
    assert '<rect class="critical"' in html and "<title>p0 try 1: success" in html
    text = render(report, "terminal", width=120)
    assert "wide · latest run · success" in text and "join" in text
    assert "```text" in render(report, "markdown")


def _opscope(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPSCOPE_STATE_DIR": str(cwd)}
    return subprocess.run(
        [sys.executable, "-m", "opscope", *args], capture_output=True, text=True, cwd=cwd, env=env
    )


def test_the_commands_on_an_import(tmp_path: Path) -> None:
    path = _fan(tmp_path / "w.json", 3)
    done = _opscope(
        "analyze", "dags", "--import", str(path), "-f", "json", "--fail-on", "warning", cwd=tmp_path
    )
    assert done.returncode == 1, done.stderr  # low_parallelism is a warning
    assert {f["check"] for f in json.loads(done.stdout)["findings"]} >= {"low_parallelism"}
    sim = _opscope("dags", "simulate", "wide", "--import", str(path), "--slots", "2", cwd=tmp_path)
    assert sim.returncode == 0, sim.stderr
    assert "expected duration" in sim.stdout and "3.1 min" not in sim.stdout
    assert "3 min 30 s   (1.95x)" in sim.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["analyze", "dags"], "no Airflow given"),
        (["analyze", "dags", "--import", "missing.json"], "missing.json: No such file"),
        (
            ["analyze", "dags", "--import", "x.json", "--airflow-db", "postgresql://h/d"],
            "give one of --airflow-db, --airflow-url and --import",
        ),
        (["analyze", "dags", "--airflow-db", "mysql://h/d"], "--airflow-db: expected a postgresql"),
        (["analyze", "dags", "--airflow-url", "ftp://h"], "--airflow-url: expected an http"),
        (["analyze", "dags", "--import", "bad.json"], "bad.json: line 1: invalid JSON"),
        (["analyze", "dags", "--import", "w.json", "--since", "soon"], "--since: 'soon'"),
        (
            ["dags", "simulate", "wide", "--import", "w.json", "--task", "p0"],
            "expected TASK=DURATION",
        ),
        (
            ["dags", "simulate", "wide", "--import", "w.json", "--drop-edge", "p0"],
            "UPSTREAM>DOWNSTREAM",
        ),
        (
            ["dags", "simulate", "wide", "--import", "w.json", "--drop-edge", "p0>p1"],
            "DAG 'wide' has no edge p0>p1 in its recent runs",
        ),
        (["dags", "simulate", "nope", "--import", "w.json"], "DAG 'nope' has no successful run"),
        (
            ["analyze", "dags", "--airflow-url", "http://127.0.0.1:9"],
            "cannot reach http://127.0.0.1:9",
        ),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    _fan(tmp_path / "w.json", 2)
    (tmp_path / "bad.json").write_text("{nope")
    done = _opscope(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("opscope: error: ") and message in lines[0], (
        lines
    )


def test_the_airflow_config_section(tmp_path: Path) -> None:
    config = tmp_path / "opscope.yaml"
    config.write_text(
        "airflow:\n"
        "  prod:\n"
        "    url: http://127.0.0.1:9/\n"
        "    token: ${AF_TOKEN}\n"
        "    thresholds: {slow_dag_s: 60}\n"
        "  files:\n"
        "    db: postgresql://reader:hunter2@127.0.0.1:9/airflow\n"
        "dags:\n"
        "  history: {max_runs: 50}\n"
    )
    env = {**os.environ, "AF_TOKEN": "tok-3f9a7c"}
    shown = subprocess.run(
        [sys.executable, "-m", "opscope", "config", "check", "-c", str(config)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert shown.returncode == 0, shown.stderr
    assert "tok-3f9a7c" not in shown.stdout and "hunter2" not in shown.stdout
    data = yaml.safe_load(shown.stdout)
    assert data["airflow"]["prod"]["token"] == "********"
    assert data["airflow"]["prod"]["thresholds"] == {"slow_dag_s": 60.0}
    assert data["dags"]["history"]["max_runs"] == 50
    (tmp_path / "bad.yaml").write_text("airflow:\n  prod:\n    token: x\n")
    bad = subprocess.run(
        [sys.executable, "-m", "opscope", "config", "check", "-c", str(tmp_path / "bad.yaml")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert bad.returncode == 2
    assert "give db: (the metadata database) or url: (the API server)" in bad.stderr
    # an unreachable API server named in the config is one line, the token nowhere
    down = subprocess.run(
        [sys.executable, "-m", "opscope", "analyze", "dags", "prod", "-c", str(config)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert down.returncode == 2 and "tok-3f9a7c" not in down.stderr + down.stdout
    assert down.stderr.startswith("opscope: error: cannot reach http://127.0.0.1:9")


def test_a_database_without_airflow_is_one_line(db: SandboxDb, tmp_path: Path) -> None:
    done = _opscope("analyze", "dags", "--airflow-db", db.dsn, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "opscope: error: no Airflow metadata here: table dag_run is not on the session's "
        "search_path"
    ]
    db.execute("CREATE TABLE dag_run (id int, dag_id text)", "CREATE TABLE task_instance (x int)")
    half = _opscope("analyze", "dags", "--airflow-db", db.dsn, cwd=tmp_path)
    assert half.returncode == 2
    assert "table dag_run lacks run_id, state, start_date, end_date" in half.stderr


def test_a_critical_task_held_back_by_tasks_off_the_path_is_told_to_go_first(
    tmp_path: Path,
) -> None:
    """prio on one slot: start (10 s), then the short side tasks s1, s2 (50 s each) took
    the slot before long (300 s), which is critical; end follows long."""
    tries: list[dict[str, Any]] = []
    for i in range(3):
        t = T0 + i * DAY
        plan = [
            ("start", 0, 10, ""),
            ("s1", 10, 60, "start"),
            ("s2", 60, 110, "start"),
            ("long", 110, 410, "start"),
            ("end", 410, 420, "long"),
        ]
        for task, a, b, up in plan:
            tries.append(
                {
                    "dag_id": "prio",
                    "run_id": f"r{i}",
                    "task_id": task,
                    "state": "success",
                    "start": t + a,
                    "end": t + b,
                    "upstream": up,
                }
            )
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"task_runs": tries}))
    found = _one(_analyze(path), "critical_path")
    assert found["tasks"] == ["start", "long", "end"]
    assert found["held_back_task"] == "long" and found["held_back_s"] == 100.0
    assert "long waited 1 min 40 s" in found["finding"].recommendation
    assert "priority_weight" in found["finding"].recommendation
    # the same DAG where long went first: nothing held it back
    for record in tries:
        if record["task_id"] == "long":
            record["start"], record["end"] = record["start"] - 100, record["end"] - 100
        elif record["task_id"] in ("s1", "s2"):
            record["start"], record["end"] = record["start"] + 300, record["end"] + 300
        elif record["task_id"] == "end":
            record["start"], record["end"] = record["start"] - 100, record["end"] - 100
    path.write_text(json.dumps({"task_runs": tries}))
    assert "held_back_task" not in _one(_analyze(path), "critical_path")

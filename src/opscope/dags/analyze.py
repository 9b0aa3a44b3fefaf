"""`analyze_dags`: the pipeline checks against one Airflow deployment (or an import), into a
Report (`opscope analyze dags`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from opscope.checks import Registry, run_checks
from opscope.config import Config
from opscope.dags.aggregate import Analysis, Progress, aggregate
from opscope.dags.checks import PoolSaturation
from opscope.dags.context import KIND, DagsContext, Prepared, prepare
from opscope.dags.figures import DagStats
from opscope.dags.gantt import chart_data
from opscope.dags.readers.metadata import Selection
from opscope.dags.settings import DagsSettings, dags_settings_for
from opscope.dags.simulate import Simulation, WhatIf, simulate, unknown_names
from opscope.dags.source import DagSource, open_pipeline
from opscope.dags.timefmt import instant, rounded
from opscope.db.connection import ConnectionFactory, connect
from opscope.findings import Clock, Report, Target, utc_now
from opscope.fixes import group_fixes
from opscope.nogc import paused_gc
from opscope.plugins import default_plugins

if TYPE_CHECKING:
    import httpx

#: DAGs listed in the summary table (the slowest first)
SUMMARY_DAGS = 50


def analyze_dags(
    config: Config,
    source: DagSource,
    *,
    name: str | None = None,
    dags: Sequence[str] | None = None,
    since: datetime | None = None,
    only: Sequence[str] | None = None,
    registry: Registry | None = None,
    connect: ConnectionFactory = connect,
    http: httpx.Client | None = None,
    clock: Clock = utc_now,
    progress: Progress | None = None,
) -> Report:
    """The pipeline report of one deployment: every check of kind `dags` in `registry`
    (default: the installed areas' and plugins').

    Raises TargetConnectionError (database), RestError (API), ImportFormatError (file),
    AirflowSchemaError (not Airflow metadata), ValueError for an unknown check in `only`."""
    name = name or source.default_name()
    registry = registry or default_plugins().checks
    checks = registry.select(KIND, "main", only)
    settings = dags_settings_for(config, name)
    selection = Selection(dags=dags, since=since, max_runs=settings.history.max_runs)
    report = Report(generated_at=clock())
    started = time.perf_counter()
    prepared = Prepared()

    def counted(stats: DagStats) -> None:
        try:
            prepare(stats, prepared, checks)
        except Exception:  # the checks meet it again, each reported as its own error
            return

    with paused_gc():
        with open_pipeline(source, settings, selection, connect=connect, http=http) as pipeline:
            analysis = aggregate(
                pipeline,
                keep_runs=settings.history.recent_runs,
                progress=progress,
                counted=counted,
            )
            version = pipeline.airflow_version
            tries = pipeline.tries_read or analysis.tries
            read_s = time.perf_counter() - started
            label = {"airflow-db": "metadata database", "airflow-rest": "REST API"}.get(
                pipeline.source, "import"
            )
        report.targets.append(Target(kind=KIND, name=name, server_version=version))
        context = DagsContext(
            target=name, analysis=analysis, thresholds=settings.thresholds, prepared=prepared
        )
        if any(check.id == PoolSaturation.id for check in checks):
            context.start_sweeps()
        try:
            findings, errors = run_checks(checks, context, target=name)
        finally:
            context.close()
        report.findings.extend(findings)
        report.errors.extend(errors)
        report.summary[name] = summary_dict(
            analysis, context, settings, source, label, version, tries, read_s
        )
    report.fixes = group_fixes(report.findings)
    return report


def _dag_row(stats: DagStats, context: DagsContext) -> dict[str, Any]:
    path = max(stats.paths.items(), key=lambda kv: (kv[1], len(kv[0])))[0] if stats.paths else ()
    par = context.parallelism(stats)
    return {
        "dag_id": stats.dag_id,
        "runs": stats.runs,
        "success": stats.states.get("success", 0),
        "failed": stats.states.get("failed", 0),
        "p50_s": rounded(stats.wall.quantile(0.5)),
        "p95_s": rounded(stats.wall.quantile(0.95)),
        "critical_path_s": rounded(stats.critical_length.quantile(0.5)),
        "critical_path": list(path),
        "slots_used": par.slots_used if par else None,
        "last_run": instant(stats.last_when),
    }


def summary_dict(
    analysis: Analysis,
    context: DagsContext,
    settings: DagsSettings,
    source: DagSource,
    label: str,
    version: str | None,
    tries: int,
    read_s: float,
) -> dict[str, Any]:
    ordered = sorted(
        analysis.dags.values(),
        key=lambda s: (-(s.wall.quantile(0.95) or 0.0), s.dag_id),
    )
    charts: list[dict[str, Any]] = []
    for stats in ordered[:SUMMARY_DAGS]:
        charts.extend(chart_data(stats, settings.history.gantt_runs))
    starts = [s.first_when for s in analysis.dags.values() if s.first_when is not None]
    ends = [s.last_when for s in analysis.dags.values() if s.last_when is not None]
    return {
        "source": label,
        "location": source.describe(),
        "airflow_version": version,
        "dags": len(analysis.dags),
        "runs": analysis.runs,
        "task_tries": tries,
        "first_run": instant(min(starts)) if starts else None,
        "last_run": instant(max(ends)) if ends else None,
        "read_s": round(read_s, 2),
        "notes": analysis.notes,
        "dag_table": [_dag_row(s, context) for s in ordered[:SUMMARY_DAGS]],
        "more_dags": max(0, len(ordered) - SUMMARY_DAGS),
        "gantt": charts,
    }


class NoRunsError(Exception):
    """The DAG has no successful run to replay; one line."""


def simulate_dag(
    config: Config,
    source: DagSource,
    dag_id: str,
    what_if: WhatIf,
    *,
    name: str | None = None,
    runs: int | None = None,
    connect: ConnectionFactory = connect,
    http: httpx.Client | None = None,
    progress: Progress | None = None,
) -> Simulation:
    """`opscope dags simulate`: the DAG's recent successful runs replayed with `what_if`.

    Raises NoRunsError, and ValueError naming a task or edge of `what_if` that the runs do
    not have."""
    name = name or source.default_name()
    settings = dags_settings_for(config, name)
    keep = runs or settings.history.recent_runs
    selection = Selection(dags=[dag_id], max_runs=max(keep * 3, keep + 10))
    with open_pipeline(source, settings, selection, connect=connect, http=http) as pipeline:
        analysis = aggregate(pipeline, keep_runs=keep * 3, progress=progress)
    stats = analysis.dags.get(dag_id)
    recent = stats.latest(keep, success=True) if stats is not None else []
    if not recent:
        raise NoRunsError(f"DAG {dag_id!r} has no successful run to replay in {source.describe()}")
    unknown = unknown_names(recent, what_if)
    if unknown:
        raise ValueError(f"DAG {dag_id!r} has no {unknown[0]} in its recent runs")
    return simulate(dag_id, recent, what_if)

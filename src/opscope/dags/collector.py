"""What `opscope serve` reads from each Airflow deployment under `airflow:`: its runs, through
the readers `opscope analyze dags` uses (the metadata database, else the REST API), only
those since the previous collection (opscope.dags.tally), as metrics by DAG and state.

Labels stay bounded: `dag_id` and `state`, never a run id. Everything is stored as series
but the active tasks and the last run's age (exposed only: the first is mostly zeros, the
second follows from the last run's end). The tally is kept in the store (`dags.runs/1`) at
every collection, so the counters go on across a restart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import psycopg
from prometheus_client.metrics_core import GaugeMetricFamily

from opscope.config import Config
from opscope.dags.context import KIND
from opscope.dags.readers.metadata import AirflowSchemaError, Selection
from opscope.dags.readers.rest import RestError
from opscope.dags.settings import airflow_targets, dags_settings_for
from opscope.dags.source import open_pipeline, target_source
from opscope.dags.tally import (
    ACTIVE_RUN_STATES,
    ACTIVE_TASK_STATES,
    SNAPSHOT_KIND,
    Active,
    RunTally,
)
from opscope.db.connection import ConnectionFactory, TargetConnectionError, connect, redact_secret
from opscope.db.monitor.metrics import Families
from opscope.errors import first_line
from opscope.monitor.collector import CollectContext, Collection, CollectorError
from opscope.redact import redact

if TYPE_CHECKING:
    import httpx

#: the states of finished runs, each counted (0 included) for every DAG
RUN_STATES = ("success", "failed")


def _down(target: str) -> Collection:
    up = GaugeMetricFamily(
        "opscope_airflow_up", "1 when the deployment's runs could be read.", labels=["target"]
    )
    up.add_metric([target], 0.0)
    return Collection(metrics=[up])


def families(target: str, tally: RunTally, active: Active, now: float, read_s: float) -> Families:
    """The families of one collection, from the tally and what is active now."""
    fam = Families(target)
    t = target
    fam.gauge("opscope_airflow_up", "1 when the deployment's runs could be read.", []).add_metric(
        [t], 1.0
    )
    runs = fam.counter(
        "opscope_dag_runs", "Finished DAG runs, by the state they ended in.", ["dag_id", "state"]
    )
    failures = fam.counter(
        "opscope_dag_task_failures", "Failed task tries of the DAG's finished runs.", ["dag_id"]
    )
    retries = fam.counter(
        "opscope_dag_task_retries",
        "Task tries beyond the first of each task instance, in the DAG's finished runs.",
        ["dag_id"],
    )
    running = fam.gauge(
        "opscope_dag_runs_active", "The DAG's runs queued or running now.", ["dag_id", "state"]
    )
    tasks = fam.gauge(
        "opscope_dag_tasks_active",
        "Task instances of the DAG's unfinished runs, scheduled, queued or running now.",
        ["dag_id", "state"],
        store=False,
    )
    duration = fam.gauge(
        "opscope_dag_last_run_duration_seconds", "How long the last finished run took.", ["dag_id"]
    )
    ended = fam.gauge(
        "opscope_dag_last_run_end_timestamp_seconds",
        "When the last finished run ended (Unix time).",
        ["dag_id"],
    )
    age = fam.gauge(
        "opscope_dag_last_run_age_seconds",
        "Seconds from the end of the last finished run to this collection.",
        ["dag_id"],
        store=False,
    )
    failed = fam.gauge(
        "opscope_dag_last_run_failed", "1 when the last finished run failed.", ["dag_id"]
    )
    success = fam.gauge(
        "opscope_dag_last_success_timestamp_seconds",
        "When the last successful run ended (Unix time).",
        ["dag_id"],
    )
    for dag_id, dag in sorted(tally.dags.items()):
        for state in sorted({*RUN_STATES, *dag.runs}):
            runs.add_metric([t, dag_id, state], float(dag.runs.get(state, 0)))
        failures.add_metric([t, dag_id], float(dag.task_failures))
        retries.add_metric([t, dag_id], float(dag.task_retries))
        for state in ACTIVE_RUN_STATES:
            running.add_metric([t, dag_id, state], float(active.runs.get((dag_id, state), 0)))
        for state in ACTIVE_TASK_STATES:
            tasks.add_metric([t, dag_id, state], float(active.tasks.get((dag_id, state), 0)))
        if dag.last is not None:
            if dag.last.duration is not None:
                duration.add_metric([t, dag_id], dag.last.duration)
            ended.add_metric([t, dag_id], dag.last.end)
            age.add_metric([t, dag_id], max(0.0, now - dag.last.end))
            failed.add_metric([t, dag_id], 1.0 if dag.last.state == "failed" else 0.0)
        if dag.last_success_end is not None:
            success.add_metric([t, dag_id], dag.last_success_end)
    fam.gauge(
        "opscope_airflow_collection_seconds", "How long the last collection took.", []
    ).add_metric([t], read_s)
    fam.gauge(
        "opscope_airflow_collection_runs", "Runs the last collection read (its window).", []
    ).add_metric([t], float(active.read))
    return fam


@dataclass
class DagsCollector:
    config: Config
    target: str
    connect: ConnectionFactory = connect
    #: the REST readers' client (default: one per run, from dags.rest)
    http: httpx.Client | None = None
    kind: str = KIND
    interval_s: float = 60.0
    timeout_s: float = 30.0
    name: str = field(init=False)
    _tally: RunTally = field(default_factory=RunTally, init=False, repr=False)
    _loaded: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self.name = f"{KIND}/{self.target}"

    def collect(self, context: CollectContext) -> Collection:
        settings = dags_settings_for(self.config, self.target)
        source = target_source(airflow_targets(self.config)[self.target])
        if not self._loaded and context.history is not None:
            latest = context.history.latest_snapshot(self.target, SNAPSHOT_KIND)
            if latest is not None:
                self._tally = RunTally.from_doc(latest[1])
        self._loaded = True
        started = time.perf_counter()
        now = context.clock()
        # a failed read leaves the tally as it was: the next one reads the same window again
        tally = RunTally.from_doc(self._tally.to_doc())
        selection = Selection(since=tally.since(), max_runs=settings.history.max_runs)
        try:
            with open_pipeline(
                source, settings, selection, connect=self.connect, http=self.http
            ) as pipeline:
                active = tally.add(pipeline.runs, now.timestamp(), pipeline.dags)
        except (TargetConnectionError, RestError, AirflowSchemaError) as exc:
            raise CollectorError(redact(str(exc)), _down(self.target)) from None
        except psycopg.Error as exc:
            message = redact_secret(first_line(exc), source.location)
            raise CollectorError(redact(message), _down(self.target)) from None
        self._tally = tally
        fam = families(self.target, tally, active, now.timestamp(), time.perf_counter() - started)
        return Collection(
            metrics=fam.stored,
            exposed=fam.exposed,
            snapshots={SNAPSHOT_KIND: tally.to_doc()},
            taken_at=now,
        )


def collectors(config: Config) -> list[DagsCollector]:
    return [DagsCollector(config, name) for name in airflow_targets(config)]

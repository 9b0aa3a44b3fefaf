"""Airflow runs collection: `opscope serve`'s collector, which reads only the runs since its
last collection, against reading the whole history window on every collection (what a
collector without a tally would do, and what `analyze dags` reads).

The metadata database is the one of benchmarks/dag_analysis_scale.py: Airflow 3.1.8's own
schema (`airflow db migrate`), 50 DAGs of 100 tasks, 200 runs each, about 1,000,000 task
instances. The collector's first collection reads all of it (`dags.history.max_runs` 500
per DAG); then each DAG gets `--new` runs that end now (one of them failed), and the
collector's next collection is timed beside a fresh collector's full read of the same
database. Both must count the new runs alike.

    python benchmarks/dag_collection.py [--dags 50] [--runs 200] [--tasks 100] [--new 1]

Measured on the shared 2-core development machine (PostgreSQL 15 sandbox over loopback,
2026-12-01, one run while other helpers' tests loaded the machine, so noisy):
    generated 1,019,933 task instance rows in the Airflow 3.1.8 schema in 38 s
    first collection: 7.23 s, 10,000 runs read
    after 50 new runs: the next collection 192 ms (50 runs read), a full read 6.98 s
    (10,050 runs read)
    dag collection: opscope 192 ms, full read 6.98 s, ratio 36x
Both count the same (the script asserts it). What the next collection still pays for
whatever the window: the scan of dag_run for the window (no index on the start or queue
time) and every DAG's serialized graph, read again at each collection.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import psycopg

from dag_analysis_scale import generated_database
from opscope.config import Config
from opscope.dags.collector import DagsCollector
from opscope.dags.settings import AirflowTarget, AirflowTargets, DagsSettings
from opscope.db.sandbox import running_sandbox
from opscope.findings import utc_now
from opscope.monitor.collector import CollectContext, Collection


def add_runs(dsn: str, new: int) -> int:
    """`new` runs per DAG ending now, copies of its first run with its task instances; the
    first DAG's last one failed. Returns the runs added."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO dag_run (dag_id, run_id, run_type, run_after, logical_date, queued_at,
                                 start_date, end_date, state, clear_number, span_status,
                                 created_dag_version_id)
            SELECT dag_id, 'bench__' || n, run_type, now() + interval '1 second' * n,
                   now() + interval '1 second' * n, now() - interval '2 minutes',
                   now() - interval '1 minute', now(),
                   CASE WHEN dag_id = 'd1' AND n = %(new)s THEN 'failed' ELSE 'success' END,
                   0, 'ended', created_dag_version_id
            FROM dag_run, generate_series(1, %(new)s) n WHERE run_id = 'scheduled__1'
            """,
            {"new": new},
        )
        conn.execute(
            """
            INSERT INTO task_instance (id, task_id, dag_id, run_id, map_index, try_number,
                                       max_tries, state, pool, pool_slots, priority_weight,
                                       queued_dttm, scheduled_dttm, start_date, end_date,
                                       duration, span_status, dag_version_id)
            SELECT gen_random_uuid(), ti.task_id, ti.dag_id, r.run_id, ti.map_index, 1,
                   ti.max_tries, CASE WHEN r.state = 'failed' AND ti.task_id = 't0'
                                      THEN 'failed' ELSE 'success' END,
                   ti.pool, ti.pool_slots, ti.priority_weight, r.start_date, r.start_date,
                   r.start_date, r.end_date, 60, 'ended', ti.dag_version_id
            FROM task_instance ti
            JOIN dag_run r ON r.dag_id = ti.dag_id AND r.run_id LIKE 'bench\\_\\_%'
            WHERE ti.run_id = 'scheduled__1'
            """
        )
        row = conn.execute("SELECT count(*) FROM dag_run WHERE run_id LIKE 'bench%'").fetchone()
        assert row is not None
        return int(row[0])


def timed(collector: DagsCollector) -> tuple[float, Collection]:
    started = time.perf_counter()
    collection = collector.collect(CollectContext(history=None, clock=utc_now))
    return time.perf_counter() - started, collection


def counts(collection: Collection) -> dict[str, object]:
    doc: dict[str, object] = collection.snapshots["dags.runs/1"]["dags"]
    return doc


def runs_read(collection: Collection) -> int:
    for family in collection.metrics:
        if family.name == "opscope_airflow_collection_runs":
            return int(family.samples[0].value)
    raise AssertionError("no opscope_airflow_collection_runs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dags", type=int, default=50)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--new", type=int, default=1)
    args = parser.parse_args()
    with running_sandbox() as box, TemporaryDirectory() as tmp:
        dsn = generated_database(box, Path(tmp), args.dags, args.runs, args.tasks)
        config = Config(
            sections={
                "airflow": AirflowTargets({"bench": AirflowTarget(db=dsn)}),
                "dags": DagsSettings(),
            }
        )
        collector = DagsCollector(config, "bench")
        first_s, first = timed(collector)
        print(f"first collection: {first_s:.2f} s, {runs_read(first):,} runs read")
        added = add_runs(dsn, args.new)
        next_s, following = timed(collector)
        full_s, full = timed(DagsCollector(config, "bench"))
        assert counts(following) == counts(full), "the two collectors count differently"
        print(
            f"after {added} new runs: the next collection {next_s * 1000:.0f} ms "
            f"({runs_read(following):,} runs read), a full read {full_s:.2f} s "
            f"({runs_read(full):,} runs read)"
        )
        print(
            f"dag collection: opscope {next_s * 1000:.0f} ms, full read {full_s:.2f} s, "
            f"ratio {full_s / next_s:.0f}x"
        )


if __name__ == "__main__":
    main()

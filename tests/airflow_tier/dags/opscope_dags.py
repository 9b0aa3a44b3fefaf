"""DAGs with known sleeps, run by a real scheduler in the integration tier.

tests/airflow_tier/expected.py says what each one does; keep the two in step (the metadata
cache is keyed by this file's hash, so changing it regenerates the runs).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

START = datetime(2026, 1, 1)
ARGS = {"retries": 0}


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


with DAG("opscope_parallel", schedule=None, start_date=START, catchup=False, default_args=ARGS):

    @task
    def start() -> None:
        _sleep(1)

    @task
    def branch_long() -> None:
        _sleep(3)

    @task
    def branch_short() -> None:
        _sleep(1)

    @task
    def join() -> None:
        _sleep(1)

    start() >> [branch_long(), branch_short()] >> join()


with DAG("opscope_chain", schedule=None, start_date=START, catchup=False, default_args=ARGS):

    @task
    def extract() -> None:
        _sleep(1)

    @task
    def transform() -> None:
        _sleep(2)

    @task
    def load() -> None:
        _sleep(1)

    extract() >> transform() >> load()


with DAG("opscope_failing", schedule=None, start_date=START, catchup=False, default_args=ARGS):

    @task
    def prepare() -> None:
        _sleep(1)

    @task
    def explode() -> None:
        _sleep(1)
        raise RuntimeError("opscope test: this task always fails")

    @task
    def never_runs() -> None:
        _sleep(1)

    prepare() >> explode() >> never_runs()


with DAG("opscope_retried", schedule=None, start_date=START, catchup=False):

    @task(retries=1, retry_delay=timedelta(seconds=1))
    def flaky(ti=None) -> None:  # type: ignore[no-untyped-def]
        _sleep(1)
        if ti.try_number == 1:
            raise RuntimeError("opscope test: the first try fails")

    @task
    def after() -> None:
        _sleep(1)

    flaky() >> after()


with DAG("opscope_mapped", schedule=None, start_date=START, catchup=False, default_args=ARGS):

    @task
    def items() -> list[int]:
        return [1, 2, 3]

    @task
    def work(item: int) -> int:
        _sleep(1)
        return item

    @task
    def total(values: list[int]) -> None:
        _sleep(1)

    total(work.expand(item=items()))


# three 1 s tasks that could run side by side, in a pool of one slot (made by the harness)
with DAG("opscope_narrow", schedule=None, start_date=START, catchup=False, default_args=ARGS):

    @task(pool="opscope_narrow")
    def left() -> None:
        _sleep(1)

    @task(pool="opscope_narrow")
    def middle() -> None:
        _sleep(1)

    @task(pool="opscope_narrow")
    def right() -> None:
        _sleep(1)

    @task
    def gather() -> None:
        _sleep(1)

    [left(), middle(), right()] >> gather()

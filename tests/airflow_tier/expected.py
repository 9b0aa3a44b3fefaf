"""What the DAGs of dags/opscope_dags.py do, for the assertions: each task's sleep (the time
it must take at least), the critical path, the failing and the retried task."""

from __future__ import annotations

#: seconds each task sleeps
SLEEPS: dict[str, dict[str, float]] = {
    "opscope_parallel": {"start": 1, "branch_long": 3, "branch_short": 1, "join": 1},
    "opscope_chain": {"extract": 1, "transform": 2, "load": 1},
    "opscope_failing": {"prepare": 1, "explode": 1},
    "opscope_retried": {"flaky": 1, "after": 1},
    "opscope_mapped": {"items": 0, "work": 1, "total": 1},
    "opscope_narrow": {"left": 1, "middle": 1, "right": 1, "gather": 1},
}
DAG_IDS = tuple(SLEEPS)

#: the critical path each run must have
CRITICAL = {
    "opscope_parallel": ["start", "branch_long", "join"],
    "opscope_chain": ["extract", "transform", "load"],
    "opscope_retried": ["flaky", "after"],
    "opscope_mapped": ["items", "work", "total"],
}
EDGES = {
    "opscope_parallel": {
        ("start", "branch_long"),
        ("start", "branch_short"),
        ("branch_long", "join"),
        ("branch_short", "join"),
    },
    "opscope_chain": {("extract", "transform"), ("transform", "load")},
    "opscope_failing": {("prepare", "explode"), ("explode", "never_runs")},
    "opscope_retried": {("flaky", "after")},
    "opscope_mapped": {("items", "work"), ("work", "total")},
    "opscope_narrow": {("left", "gather"), ("middle", "gather"), ("right", "gather")},
}
MAPPED = {"opscope_mapped": ("work", 3)}
FAILED_RUNS = {"opscope_failing"}
FAILING_TASK = ("opscope_failing", "explode")
NEVER_RAN = ("opscope_failing", "never_runs")
#: the task whose first try fails and whose second succeeds, with its retry delay
RETRIED = ("opscope_retried", "flaky", 1.0)
NARROW_POOL = ("opscope_narrow", 1)

#: how much longer than its sleep a task may take: starting a task costs Airflow up to a few
#: seconds on a loaded machine, a failing one more (the traceback, the failure callbacks)
SLACK_S = 12.0
FAILED_SLACK_S = 15.0

"""Pipelines: Airflow 2.x/3.x readers (metadata database, REST API) and a JSON/CSV import,
one run model, critical paths, parallelism, queue waits, retries, failures, regressions, a
list-scheduler what-if, and Gantt charts (`opscope analyze dags`, `opscope dags simulate`)."""

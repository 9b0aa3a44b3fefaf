"""Readers of pipeline history: the Airflow metadata database (2.7+ and 3.x), the Airflow
REST API (v1 for 2.x, v2 for 3.x), and a JSON/CSV import for other orchestrators. Each
returns a `opscope.dags.model.Pipeline`."""

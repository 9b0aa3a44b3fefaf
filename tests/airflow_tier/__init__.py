"""The Airflow integration tier: venvs, a real deployment, what its DAGs do."""

-- The runs analysed: the newest `max_runs` per DAG, since `since`, of the DAGs asked for.
-- {logical_date} is execution_date (Airflow 2) or logical_date (Airflow 3), {dag_version}
-- the run's created_dag_version_id where it exists.
SELECT r.id, r.dag_id, r.run_id, r.state, r.run_type, r.queued_at, r.start_date, r.end_date,
       {logical_date} AS logical_date, {run_after} AS run_after,
       {dag_version} AS created_dag_version_id
FROM (
    SELECT d.*, row_number() OVER (
               PARTITION BY d.dag_id
               ORDER BY COALESCE(d.start_date, d.queued_at) DESC NULLS LAST, d.id DESC
           ) AS recency
    FROM {schema}.dag_run d
    WHERE (%(dags)s::text[] IS NULL OR d.dag_id = ANY(%(dags)s::text[]))
      AND (%(since)s::timestamptz IS NULL OR COALESCE(d.start_date, d.queued_at) >= %(since)s::timestamptz)
) r
WHERE r.recency <= %(max_runs)s

-- Airflow 2: one serialized DAG per DAG, the latest parse.
SELECT s.dag_id, NULL::text AS dag_version, NULL::int AS version_number,
       s.data::text AS data, s.data_compressed
FROM {schema}.serialized_dag s
WHERE %(dags)s::text[] IS NULL OR s.dag_id = ANY(%(dags)s::text[])

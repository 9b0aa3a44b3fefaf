-- Airflow 3: one serialized DAG per DAG version; only the versions the selected runs were
-- created with, and each DAG's newest.
WITH wanted AS (
    SELECT DISTINCT r.created_dag_version_id AS id
    FROM ({runs}) r
    WHERE r.created_dag_version_id IS NOT NULL
    UNION
    SELECT DISTINCT ON (v.dag_id) v.id
    FROM {schema}.dag_version v
    WHERE %(dags)s::text[] IS NULL OR v.dag_id = ANY(%(dags)s::text[])
    ORDER BY 1
)
SELECT s.dag_id, s.dag_version_id::text AS dag_version, v.version_number,
       s.data::text AS data, s.data_compressed
FROM {schema}.serialized_dag s
JOIN {schema}.dag_version v ON v.id = s.dag_version_id
WHERE s.dag_version_id IN (SELECT id FROM wanted)

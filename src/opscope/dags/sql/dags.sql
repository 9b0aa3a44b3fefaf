-- DAGs with the task slots one run of each may use.
SELECT d.dag_id, d.max_active_tasks
FROM {schema}.dag d
WHERE %(dags)s::text[] IS NULL OR d.dag_id = ANY(%(dags)s::text[])
ORDER BY d.dag_id

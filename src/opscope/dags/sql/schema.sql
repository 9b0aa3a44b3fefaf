-- The Airflow tables opscope reads and their columns, in the schema where dag_run is found
-- on the session's search_path: what tells Airflow 2 from Airflow 3.
SELECT n.nspname AS schema, c.relname AS table_name, a.attname AS column_name
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.oid = (SELECT relnamespace FROM pg_catalog.pg_class WHERE oid = to_regclass('dag_run'))
  AND c.relkind IN ('r', 'p', 'v')
  AND c.relname IN ('alembic_version', 'dag', 'dag_run', 'dag_version', 'serialized_dag',
                    'slot_pool', 'task_fail', 'task_instance', 'task_instance_history')
ORDER BY c.relname, a.attnum

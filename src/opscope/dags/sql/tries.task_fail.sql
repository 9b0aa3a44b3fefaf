-- Airflow 2.7 to 2.9 (no task_instance_history): the current try of every task instance of
-- the selected runs, then the failed tries task_fail recorded (without their try number,
-- which the reader gives them by start time; the one that is the current try is dropped),
-- by DAG and then by run (the order of runs.sql).
WITH runs AS ({runs})
SELECT t.run_key, t.task_id, t.map_index, t.try_number, t.state, t.pool,
       COALESCE(t.pool_slots, 1),
       NULL::float8,
       date_part('epoch', t.queued_dttm),
       date_part('epoch', t.start_date),
       date_part('epoch', t.end_date),
       t.earlier
FROM (
    SELECT r.dag_id AS dag_key, r.id AS run_key, ti.task_id, ti.map_index, ti.try_number,
           ti.state, ti.pool, ti.pool_slots, ti.queued_dttm, ti.start_date, ti.end_date, false AS earlier
    FROM {schema}.task_instance ti
    JOIN runs r ON r.dag_id = ti.dag_id AND r.run_id = ti.run_id
    UNION ALL
    SELECT r.dag_id, r.id, f.task_id, f.map_index, 0, 'failed', NULL, 1, NULL, f.start_date,
           f.end_date, true
    FROM {schema}.task_fail f
    JOIN runs r ON r.dag_id = f.dag_id AND r.run_id = f.run_id
) t
ORDER BY t.dag_key, t.run_key

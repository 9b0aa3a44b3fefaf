-- Airflow 2.10+ and 3: the current try of every task instance of the selected runs, then
-- its earlier tries from task_instance_history, ordered by run. The scheduled time is Airflow 3's
-- scheduled_dttm (NULL before).
WITH runs AS ({runs})
SELECT t.run_key, t.task_id, t.map_index, t.try_number, t.state, t.pool,
       COALESCE(t.pool_slots, 1),
       date_part('epoch', t.scheduled),
       date_part('epoch', t.queued_dttm),
       date_part('epoch', t.start_date),
       date_part('epoch', t.end_date),
       t.earlier
FROM (
    SELECT r.id AS run_key, ti.task_id, ti.map_index, ti.try_number, ti.state, ti.pool,
           ti.pool_slots, {ti_scheduled} AS scheduled, ti.queued_dttm, ti.start_date,
           ti.end_date, false AS earlier
    FROM {schema}.task_instance ti
    JOIN runs r ON r.dag_id = ti.dag_id AND r.run_id = ti.run_id
    UNION ALL
    SELECT r.id, h.task_id, h.map_index, h.try_number, h.state, h.pool, h.pool_slots,
           {history_scheduled}, h.queued_dttm, h.start_date, h.end_date, true
    FROM {schema}.task_instance_history h
    JOIN runs r ON r.dag_id = h.dag_id AND r.run_id = h.run_id
) t
ORDER BY t.run_key

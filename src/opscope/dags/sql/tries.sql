-- Airflow 2.10+ and 3: the current try of every task instance of the selected runs, and
-- its earlier tries from task_instance_history, by DAG and then by run_id. Both tables are
-- read in the order of their (dag_id, run_id) index and joined in it, so that nothing is
-- sorted and the first rows come at once (the reader hands each DAG's runs on by id, the
-- order of runs.sql). Ordered by id alone, all the rows were sorted, on disk, before the
-- first came; by DAG then id, each DAG's were, a quarter of the query's time.
-- The scheduled time is Airflow 3's scheduled_dttm (NULL before).
WITH runs AS ({runs})
SELECT r.id, t.task_id, t.map_index, t.try_number, t.state, t.pool,
       COALESCE(t.pool_slots, 1),
       date_part('epoch', t.scheduled),
       date_part('epoch', t.queued_dttm),
       date_part('epoch', t.start_date),
       date_part('epoch', t.end_date),
       t.earlier
FROM runs r
JOIN (
    SELECT ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number, ti.state, ti.pool,
           ti.pool_slots, {ti_scheduled} AS scheduled, ti.queued_dttm, ti.start_date,
           ti.end_date, false AS earlier
    FROM {schema}.task_instance ti
    UNION ALL
    SELECT h.dag_id, h.run_id, h.task_id, h.map_index, h.try_number, h.state, h.pool, h.pool_slots,
           {history_scheduled}, h.queued_dttm, h.start_date, h.end_date, true
    FROM {schema}.task_instance_history h
) t ON t.dag_id = r.dag_id AND t.run_id = r.run_id
ORDER BY r.dag_id, r.run_id

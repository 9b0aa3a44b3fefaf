-- Airflow 2.10+ and 3, for the aggregation: one row a run, its current tries (from
-- task_instance) and its earlier ones (task_instance_history), each column an array in its
-- binary form (columns.py reads them; the order is its NAMES). A run's tries are found
-- through the tables' (dag_id, run_id) indexes, so only the selected runs' are read, and
-- each array keeps the index's order (the same task order from run to run, which the
-- reader maps to the plan once). Times are sent as they are stored (columns.py makes the
-- seconds date_part would), a missing one as -infinity: the arrays hold no NULL but for
-- map_index and try_number, which would leave the run to the general path.
-- No tries: NULL arrays. Runs by DAG, then by run_id.
WITH runs AS ({runs})
SELECT r.id,
       c.task_ids, c.map_indexes, c.try_numbers, c.states, c.pools, c.pool_slots,
       c.scheduled, c.queued, c.starts, c.ends,
       e.task_ids, e.map_indexes, e.try_numbers, e.states, e.pools, e.pool_slots,
       e.scheduled, e.queued, e.starts, e.ends
FROM runs r
CROSS JOIN LATERAL (
    SELECT array_send(array_agg(ti.task_id::text)) AS task_ids,
           array_send(array_agg(ti.map_index::int4)) AS map_indexes,
           array_send(array_agg(ti.try_number::int4)) AS try_numbers,
           array_send(array_agg(ti.state::text)) AS states,
           array_send(array_agg(ti.pool::text)) AS pools,
           array_send(array_agg(COALESCE(ti.pool_slots, 1)::int4)) AS pool_slots,
           array_send(array_agg(COALESCE({ti_scheduled}, '-infinity'))) AS scheduled,
           array_send(array_agg(COALESCE(ti.queued_dttm, '-infinity'))) AS queued,
           array_send(array_agg(COALESCE(ti.start_date, '-infinity'))) AS starts,
           array_send(array_agg(COALESCE(ti.end_date, '-infinity'))) AS ends
    FROM {schema}.task_instance ti
    WHERE ti.dag_id = r.dag_id AND ti.run_id = r.run_id
) c
CROSS JOIN LATERAL (
    SELECT array_send(array_agg(h.task_id::text)) AS task_ids,
           array_send(array_agg(h.map_index::int4)) AS map_indexes,
           array_send(array_agg(h.try_number::int4)) AS try_numbers,
           array_send(array_agg(h.state::text)) AS states,
           array_send(array_agg(h.pool::text)) AS pools,
           array_send(array_agg(COALESCE(h.pool_slots, 1)::int4)) AS pool_slots,
           array_send(array_agg(COALESCE({history_scheduled}, '-infinity'))) AS scheduled,
           array_send(array_agg(COALESCE(h.queued_dttm, '-infinity'))) AS queued,
           array_send(array_agg(COALESCE(h.start_date, '-infinity'))) AS starts,
           array_send(array_agg(COALESCE(h.end_date, '-infinity'))) AS ends
    FROM {schema}.task_instance_history h
    WHERE h.dag_id = r.dag_id AND h.run_id = r.run_id
) e
ORDER BY r.dag_id, r.run_id

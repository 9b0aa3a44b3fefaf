-- The selected runs in the order their tries are read (tries.sql): by DAG, then by id.
SELECT r.id, r.dag_id, r.run_id, r.state, r.run_type,
       date_part('epoch', r.logical_date),
       date_part('epoch', r.run_after),
       date_part('epoch', r.queued_at),
       date_part('epoch', r.start_date),
       date_part('epoch', r.end_date),
       r.created_dag_version_id::text
FROM ({runs}) r
ORDER BY r.dag_id, r.id

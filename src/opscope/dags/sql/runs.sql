SELECT r.id, r.dag_id, r.run_id, r.state, r.run_type,
       extract(epoch FROM r.logical_date)::float8,
       extract(epoch FROM r.run_after)::float8,
       extract(epoch FROM r.queued_at)::float8,
       extract(epoch FROM r.start_date)::float8,
       extract(epoch FROM r.end_date)::float8,
       r.created_dag_version_id::text
FROM ({runs}) r
ORDER BY r.id

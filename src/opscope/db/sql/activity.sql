/* opscope */
-- Every session of the server (connections count against max_connections whatever their
-- database). pg_blocking_pids takes the lock manager's locks: it is called only for the
-- sessions that wait for a lock.
SELECT a.pid,
       a.datname AS database,
       a.usename AS username,
       a.application_name,
       a.client_addr::text AS client_addr,
       a.backend_type,
       a.state,
       a.wait_event_type,
       a.wait_event,
       a.query,
       extract(epoch FROM now() - a.backend_start)::float8 AS backend_age_s,
       extract(epoch FROM now() - a.xact_start)::float8 AS xact_age_s,
       extract(epoch FROM now() - a.query_start)::float8 AS query_age_s,
       extract(epoch FROM now() - a.state_change)::float8 AS state_age_s,
       CASE WHEN a.wait_event_type = 'Lock' THEN pg_blocking_pids(a.pid) ELSE '{}'::int[] END
           AS blocked_by,
       a.pid = pg_backend_pid() AS own
FROM pg_stat_activity a
ORDER BY a.pid

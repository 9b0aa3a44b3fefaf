/* opscope */
-- pg_stat_statements for the current database. Only columns present under the same name in
-- PostgreSQL 15 and later are read, so this one file serves every supported server.
-- {pgss} is the extension's schema, filled in as an identifier (statements.py).
SELECT s.queryid,
       s.userid::bigint AS userid,
       r.rolname AS username,
       s.toplevel,
       s.query,
       s.calls,
       s.total_exec_time,
       s.min_exec_time,
       s.max_exec_time,
       s.mean_exec_time,
       s.stddev_exec_time,
       s.rows,
       s.shared_blks_hit,
       s.shared_blks_read,
       s.temp_blks_read,
       s.temp_blks_written
FROM {pgss}.pg_stat_statements AS s
LEFT JOIN pg_roles r ON r.oid = s.userid
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND s.queryid IS NOT NULL
  AND s.query NOT LIKE '/* opscope */%'

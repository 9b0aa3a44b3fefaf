-- pg_stat_statements 1.12 (PostgreSQL 18): parallel workers planned and launched.
SELECT /* opscope */ s.queryid,
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
       s.temp_blks_written,
       s.wal_bytes::bigint AS wal_bytes,
       s.shared_blk_read_time + s.local_blk_read_time AS read_time_ms,
       s.shared_blk_write_time + s.local_blk_write_time AS write_time_ms,
       s.stats_since AS since,
       s.parallel_workers_to_launch AS parallel_workers_planned,
       s.parallel_workers_launched
FROM {pgss}.pg_stat_statements AS s
LEFT JOIN pg_roles r ON r.oid = s.userid
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND s.queryid IS NOT NULL
  -- opscope's own statements carry the marker after their first keyword: PostgreSQL 18
  -- stores a statement's text from its first keyword, without the comments before it
  AND s.query !~ '^(\s*--[^\n]*\n)*\s*[[:alpha:]]+ /\* opscope \*/'
  AND s.query NOT LIKE '/* opscope */%'

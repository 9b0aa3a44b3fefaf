-- pg_stat_statements for the current database, as version 1.8 (PostgreSQL 13) has it: no
-- toplevel column, every entry is a top-level statement. The file of each later version is
-- chosen by the extension's own version, which can lag the server's after an upgrade
-- (statements.py). {pgss} is the extension's schema, filled in as an identifier.
SELECT /* opscope */ s.queryid,
       s.userid::bigint AS userid,
       r.rolname AS username,
       true AS toplevel,
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
       s.blk_read_time AS read_time_ms,
       s.blk_write_time AS write_time_ms
FROM {pgss}.pg_stat_statements AS s
LEFT JOIN pg_roles r ON r.oid = s.userid
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND s.queryid IS NOT NULL
  -- opscope's own statements carry the marker after their first keyword: PostgreSQL 18
  -- stores a statement's text from its first keyword, without the comments before it
  AND s.query !~ '^(\s*--[^\n]*\n)*\s*[[:alpha:]]+ /\* opscope \*/'
  AND s.query NOT LIKE '/* opscope */%'

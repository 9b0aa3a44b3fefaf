/* opscope */
-- Server-wide figures (PostgreSQL 17 and later: checkpoints moved to pg_stat_checkpointer).
SELECT current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS superuser_reserved,
       current_setting('reserved_connections')::int AS reserved_connections,
       pg_size_bytes(current_setting('shared_buffers')) AS shared_buffers_bytes,
       pg_size_bytes(current_setting('work_mem')) AS work_mem_bytes,
       pg_size_bytes(current_setting('effective_cache_size')) AS effective_cache_size_bytes,
       pg_size_bytes(current_setting('max_wal_size')) AS max_wal_size_bytes,
       (SELECT setting::bigint FROM pg_settings WHERE name = 'idle_in_transaction_session_timeout')
           AS idle_in_transaction_timeout_ms,
       pg_is_in_recovery() AS in_recovery,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8 END AS wal_lsn_bytes,
       w.wal_bytes::float8 AS wal_bytes,
       extract(epoch FROM now() - w.stats_reset)::float8 AS wal_stats_age_s,
       b.num_timed AS checkpoints_timed,
       b.num_requested AS checkpoints_requested,
       b.write_time AS checkpoint_write_ms,
       b.buffers_written AS buffers_checkpoint,
       extract(epoch FROM now() - b.stats_reset)::float8 AS checkpoint_stats_age_s,
       (SELECT sum(temp_files) FROM pg_stat_database)::bigint AS temp_files,
       (SELECT sum(temp_bytes) FROM pg_stat_database)::bigint AS temp_bytes,
       extract(epoch FROM now() - pg_postmaster_start_time())::float8 AS uptime_s,
       host(inet_server_addr()) AS server_addr
FROM pg_stat_wal w, pg_stat_checkpointer b

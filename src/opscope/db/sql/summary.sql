/* opscope */
SELECT current_database() AS database,
       current_setting('server_version') AS server_version,
       current_setting('server_version_num')::int AS server_version_num,
       pg_database_size(current_database()) AS database_bytes,
       d.blks_hit,
       d.blks_read,
       d.xact_commit,
       d.xact_rollback,
       d.deadlocks,
       d.temp_bytes,
       d.stats_reset,
       pg_postmaster_start_time() AS postmaster_start,
       now() AS now,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS connections,
       current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS reserved_connections,
       age(db.datfrozenxid)::bigint AS xid_age,
       current_setting('autovacuum_freeze_max_age')::bigint AS autovacuum_freeze_max_age,
       current_setting('autovacuum') = 'on' AS autovacuum,
       current_setting('autovacuum_vacuum_threshold')::bigint AS autovacuum_vacuum_threshold,
       current_setting('autovacuum_vacuum_scale_factor')::float8 AS autovacuum_vacuum_scale_factor,
       current_setting('block_size')::int AS block_size,
       EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements') AS has_pg_stat_statements,
       (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        WHERE e.extname = 'pg_stat_statements') AS pg_stat_statements_schema,
       EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'hypopg') AS has_hypopg,
       EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_qualstats') AS has_pg_qualstats,
       current_setting('shared_preload_libraries') AS shared_preload_libraries,
       current_setting('is_superuser') = 'on' AS superuser
FROM pg_stat_database d
JOIN pg_database db ON db.oid = d.datid
WHERE d.datname = current_database()

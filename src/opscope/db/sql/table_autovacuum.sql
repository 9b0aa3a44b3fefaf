/* opscope */
-- Per table of the user schemas: write activity and dead tuples, with the autovacuum
-- settings in force (its own reloptions, else the server's). The size of a table another
-- session holds in ACCESS EXCLUSIVE mode comes from relpages: pg_relation_size would queue
-- behind it (as tables.sql does).
WITH locked AS (
    SELECT DISTINCT l.relation
    FROM pg_locks l
    WHERE l.locktype = 'relation'
      AND l.mode = 'AccessExclusiveLock'
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.pid <> pg_backend_pid()
)
SELECT n.nspname AS schema,
       c.relname AS name,
       CASE WHEN c.oid IN (SELECT relation FROM locked)
            THEN c.relpages::bigint * current_setting('block_size')::bigint
            ELSE pg_relation_size(c.oid) END AS heap_bytes,
       s.n_live_tup,
       s.n_dead_tup,
       s.n_tup_upd + s.n_tup_del AS changes,
       s.autovacuum_count,
       extract(epoch FROM now() - greatest(s.last_autovacuum, s.last_vacuum))::float8
           AS since_vacuum_s,
       COALESCE((SELECT option_value::float8 FROM pg_options_to_table(c.reloptions)
                 WHERE option_name = 'autovacuum_vacuum_scale_factor'),
                current_setting('autovacuum_vacuum_scale_factor')::float8) AS scale_factor,
       COALESCE((SELECT option_value::float8 FROM pg_options_to_table(c.reloptions)
                 WHERE option_name = 'autovacuum_vacuum_threshold'),
                current_setting('autovacuum_vacuum_threshold')::float8) AS threshold,
       (SELECT option_name IS NOT NULL FROM pg_options_to_table(c.reloptions)
        WHERE option_name = 'autovacuum_vacuum_scale_factor') IS TRUE AS own_scale_factor
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.relkind IN ('r', 'm', 't')
ORDER BY s.n_dead_tup DESC
LIMIT 500

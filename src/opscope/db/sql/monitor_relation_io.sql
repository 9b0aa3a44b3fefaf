/* opscope */
-- What `opscope serve` exposes per table and index beyond the catalog snapshot
-- (tables.sql, indexes.sql): block reads and hits, and vacuum and analyze counts.
SELECT 'table' AS what,
       t.relid::bigint AS oid,
       to_jsonb(io) - 'relid' - 'schemaname' - 'relname'
           || jsonb_build_object('vacuum_count', t.vacuum_count,
                                 'autovacuum_count', t.autovacuum_count,
                                 'analyze_count', t.analyze_count,
                                 'autoanalyze_count', t.autoanalyze_count) AS counters
FROM pg_stat_user_tables t
JOIN pg_statio_user_tables io ON io.relid = t.relid
UNION ALL
SELECT 'index', io.indexrelid::bigint,
       jsonb_build_object('idx_blks_read', io.idx_blks_read, 'idx_blks_hit', io.idx_blks_hit)
FROM pg_statio_user_indexes io

/* opscope */
-- One row per ordinary table and materialized view outside the system schemas.
SELECT c.oid::bigint AS oid,
       n.nspname AS schema,
       c.relname AS name,
       c.relkind::text AS kind,
       c.reltuples::float8 AS reltuples,
       c.relpages::bigint AS relpages,
       pg_relation_size(c.oid) AS heap_bytes,
       pg_total_relation_size(c.oid) AS total_bytes,
       pg_indexes_size(c.oid) AS index_bytes,
       COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0) AS toast_bytes,
       COALESCE(s.seq_scan, 0) AS seq_scan,
       COALESCE(s.seq_tup_read, 0) AS seq_tup_read,
       COALESCE(s.idx_scan, 0) AS idx_scan,
       COALESCE(s.idx_tup_fetch, 0) AS idx_tup_fetch,
       COALESCE(s.n_tup_ins, 0) AS n_tup_ins,
       COALESCE(s.n_tup_upd, 0) AS n_tup_upd,
       COALESCE(s.n_tup_del, 0) AS n_tup_del,
       COALESCE(s.n_tup_hot_upd, 0) AS n_tup_hot_upd,
       COALESCE(s.n_live_tup, 0) AS n_live_tup,
       COALESCE(s.n_dead_tup, 0) AS n_dead_tup,
       COALESCE(s.n_mod_since_analyze, 0) AS n_mod_since_analyze,
       s.last_vacuum,
       s.last_autovacuum,
       s.last_analyze,
       s.last_autoanalyze,
       age(c.relfrozenxid)::bigint AS xid_age,
       COALESCE(c.reloptions, '{}') AS reloptions
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.relkind IN ('r', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_(toast|temp_)'
ORDER BY n.nspname, c.relname

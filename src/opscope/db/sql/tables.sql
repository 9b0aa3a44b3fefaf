-- One row per ordinary table, partitioned table and materialized view outside the system
-- schemas. Partitioned tables have no storage of their own (sizes 0, no heap counters); the
-- checks sum their partitions, found through parent_oid.
-- Sizes of relations that another session holds (or waits for) in ACCESS EXCLUSIVE mode come
-- from pg_class.relpages instead of pg_relation_size(): the size functions take a lock and
-- would queue behind a VACUUM FULL or ALTER TABLE until lock_timeout cancels the whole query.
WITH /* opscope */ locked AS (
    SELECT DISTINCT l.relation
    FROM pg_locks l
    WHERE l.locktype = 'relation'
      AND l.mode = 'AccessExclusiveLock'
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.pid <> pg_backend_pid()
),
bs AS (SELECT current_setting('block_size')::bigint AS block_size)
SELECT c.oid::bigint AS oid,
       n.nspname AS schema,
       c.relname AS name,
       c.relkind::text AS kind,
       c.reltuples::float8 AS reltuples,
       c.relpages::bigint AS relpages,
       k.is_locked AS size_estimated,
       CASE WHEN k.is_locked THEN c.relpages * bs.block_size
            ELSE pg_relation_size(c.oid) END AS heap_bytes,
       CASE WHEN k.is_locked THEN
                (c.relpages + COALESCE(t.relpages, 0) + COALESCE(ix.pages, 0)) * bs.block_size
            ELSE pg_total_relation_size(c.oid) END AS total_bytes,
       CASE WHEN k.is_locked THEN COALESCE(ix.pages, 0) * bs.block_size
            ELSE pg_indexes_size(c.oid) END AS index_bytes,
       CASE WHEN k.is_locked THEN COALESCE(t.relpages, 0) * bs.block_size
            ELSE COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0) END AS toast_bytes,
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
       -- the TOAST table has its own relfrozenxid and is frozen by the same VACUUM
       -- (a partitioned table has no relfrozenxid: age() of it would be 2^31 - 1)
       CASE WHEN c.relkind = 'p' THEN 0
            ELSE GREATEST(age(c.relfrozenxid), age(t.relfrozenxid)) END::bigint AS xid_age,
       COALESCE(c.reloptions, '{}') AS reloptions,
       (SELECT inh.inhparent::bigint FROM pg_inherits inh
        WHERE c.relispartition AND inh.inhrelid = c.oid) AS parent_oid
FROM pg_class c
CROSS JOIN bs
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
LEFT JOIN LATERAL (
    SELECT sum(ic.relpages)::bigint AS pages
    FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
    WHERE i.indrelid = c.oid
) ix ON true
CROSS JOIN LATERAL (
    SELECT c.oid IN (SELECT relation FROM locked)
        OR c.reltoastrelid IN (SELECT relation FROM locked)
        OR EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid
                   AND i.indexrelid IN (SELECT relation FROM locked)) AS is_locked
) k
WHERE c.relkind IN ('r', 'm', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_(toast|temp_)'
ORDER BY n.nspname, c.relname

-- One row per index on a user table, with what the index review needs to compare indexes
-- (keys, expressions, predicate, operator classes, collations, options) and its usage.
-- As in tables.sql, a relation held in ACCESS EXCLUSIVE mode by another session is sized from
-- pg_class.relpages, so opscope never queues behind a rewrite.
WITH /* opscope */ locked AS (
    SELECT DISTINCT l.relation
    FROM pg_locks l
    WHERE l.locktype = 'relation'
      AND l.mode = 'AccessExclusiveLock'
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.pid <> pg_backend_pid()
)
SELECT i.indexrelid::bigint AS oid,
       i.indrelid::bigint AS table_oid,
       n.nspname AS schema,
       t.relname AS table_name,
       c.relname AS name,
       am.amname AS method,
       i.indisunique AS is_unique,
       i.indisprimary AS is_primary,
       i.indisexclusion AS is_exclusion,
       i.indisvalid AS is_valid,
       i.indisready AS is_ready,
       i.indisreplident AS is_replica_identity,
       i.indnullsnotdistinct AS nulls_not_distinct,
       i.indnkeyatts::int AS key_count,
       i.indnatts::int AS column_count,
       i.indkey::int2[] AS attnums,
       -- per index column, the table column's name (NULL for an expression), and the index's
       -- own column name: pg_stats keys expression statistics by the latter
       ARRAY(SELECT a.attname::text
             FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS u(attnum, ord)
             LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = u.attnum
                                     AND u.attnum <> 0
             ORDER BY u.ord) AS attnames,
       ARRAY(SELECT a.attname::text
             FROM pg_attribute a
             WHERE a.attrelid = i.indexrelid AND a.attnum > 0
             ORDER BY a.attnum) AS index_attnames,
       i.indclass::oid[]::bigint[] AS opclasses,
       i.indcollation::oid[]::bigint[] AS collations,
       i.indoption::int2[] AS options,
       -- the deparse functions lock the table, so a locked table's indexes get plain column
       -- names only, and details_known tells the checks not to compare them
       NOT k.is_locked AS details_known,
       CASE WHEN k.is_locked THEN
                ARRAY(SELECT COALESCE(a.attname::text, 'expression')
                      FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS u(attnum, ord)
                      LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = u.attnum
                      ORDER BY u.ord)
            ELSE ARRAY(SELECT pg_get_indexdef(i.indexrelid, g, true)
                       FROM generate_series(1, i.indnatts::int) AS g ORDER BY g)
       END AS column_defs,
       CASE WHEN k.is_locked THEN NULL ELSE pg_get_expr(i.indexprs, i.indrelid) END
           AS expressions,
       CASE WHEN k.is_locked THEN CASE WHEN i.indpred IS NULL THEN NULL ELSE '?' END
            ELSE pg_get_expr(i.indpred, i.indrelid, true) END AS predicate,
       CASE WHEN k.is_locked THEN '' ELSE pg_get_indexdef(i.indexrelid) END AS definition,
       con.conname AS constraint_name,
       con.contype::text AS constraint_type,
       CASE WHEN k.is_locked
            THEN c.relpages::bigint * current_setting('block_size')::bigint
            ELSE pg_relation_size(i.indexrelid) END AS bytes,
       c.reltuples::float8 AS reltuples,
       COALESCE(s.idx_scan, 0) AS idx_scan,
       COALESCE(s.idx_tup_read, 0) AS idx_tup_read,
       COALESCE(s.idx_tup_fetch, 0) AS idx_tup_fetch,
       COALESCE((SELECT option_value::int FROM pg_options_to_table(c.reloptions)
                 WHERE option_name = 'fillfactor'), 0) AS fillfactor,
       t.relkind::text AS table_kind,
       -- the partitioned index this partition's index is attached to
       (SELECT inh.inhparent::bigint FROM pg_inherits inh
        WHERE c.relispartition AND inh.inhrelid = i.indexrelid) AS parent_index_oid
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_am am ON am.oid = c.relam
LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.contype IN ('p', 'u', 'x')
LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = i.indexrelid
CROSS JOIN LATERAL (
    SELECT i.indexrelid IN (SELECT relation FROM locked)
        OR i.indrelid IN (SELECT relation FROM locked) AS is_locked
) k
WHERE t.relkind IN ('r', 'm', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_(toast|temp_)'
ORDER BY n.nspname, t.relname, c.relname

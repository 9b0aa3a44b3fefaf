/* opscope */
-- One row per index on a user table, with what the index review needs to compare indexes
-- (keys, expressions, predicate, operator classes, collations, options) and its usage.
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
       i.indnkeyatts::int AS key_count,
       i.indnatts::int AS column_count,
       i.indkey::int2[] AS attnums,
       i.indclass::oid[]::bigint[] AS opclasses,
       i.indcollation::oid[]::bigint[] AS collations,
       i.indoption::int2[] AS options,
       ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true)
             FROM generate_series(1, i.indnatts::int) AS k ORDER BY k) AS column_defs,
       pg_get_expr(i.indexprs, i.indrelid) AS expressions,
       pg_get_expr(i.indpred, i.indrelid, true) AS predicate,
       pg_get_indexdef(i.indexrelid) AS definition,
       con.conname AS constraint_name,
       con.contype::text AS constraint_type,
       pg_relation_size(i.indexrelid) AS bytes,
       c.reltuples::float8 AS reltuples,
       COALESCE(s.idx_scan, 0) AS idx_scan,
       COALESCE(s.idx_tup_read, 0) AS idx_tup_read,
       COALESCE(s.idx_tup_fetch, 0) AS idx_tup_fetch,
       COALESCE((SELECT option_value::int FROM pg_options_to_table(c.reloptions)
                 WHERE option_name = 'fillfactor'), 0) AS fillfactor
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_am am ON am.oid = c.relam
LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.contype IN ('p', 'u', 'x')
LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = i.indexrelid
WHERE t.relkind IN ('r', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_(toast|temp_)'
ORDER BY n.nspname, t.relname, c.relname

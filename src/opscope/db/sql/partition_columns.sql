-- The columns a partitioning plan may key on, for the tables given (oids): their type, and
-- what the planner's statistics say of their values (distinct count, the histogram's first
-- and last bounds, the most common values and their shares). Bounds come as text, parsed by
-- type in Python (partitions/model.py).
SELECT /* opscope */ c.oid::bigint AS table_oid,
       a.attname AS column_name,
       format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS not_null,
       s.n_distinct::float8 AS n_distinct,
       s.null_frac::float8 AS null_frac,
       (s.histogram_bounds::text::text[])[1] AS low,
       (s.histogram_bounds::text::text[])[array_length(s.histogram_bounds::text::text[], 1)]
           AS high,
       COALESCE(s.most_common_vals::text::text[], '{}') AS common_values,
       COALESCE(s.most_common_freqs::float8[], '{}') AS common_shares
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_stats s
       ON s.schemaname = n.nspname AND s.tablename = c.relname AND s.attname = a.attname
      AND NOT s.inherited
WHERE c.oid = ANY(%(oids)s::oid[])
ORDER BY c.oid, a.attnum

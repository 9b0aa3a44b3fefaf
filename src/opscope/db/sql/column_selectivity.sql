-- Distinct values and null share per column, for ranking index candidates when hypothetical
-- indexes are not available. n_distinct < 0 is a fraction of the rows.
SELECT /* opscope */ schemaname AS schema,
       tablename AS table_name,
       attname AS column_name,
       n_distinct::float8 AS n_distinct,
       null_frac::float8 AS null_frac,
       correlation::float8 AS correlation
FROM pg_stats
WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
  AND NOT inherited

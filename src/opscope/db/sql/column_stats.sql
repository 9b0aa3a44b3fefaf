-- Average widths from the planner statistics, used to estimate how large a table or btree
-- index would be without bloat. Expression indexes have rows under the index's own name.
SELECT /* opscope */ schemaname AS schema,
       tablename AS relation,
       attname AS column_name,
       avg_width::int AS avg_width,
       null_frac::float8 AS null_frac
FROM pg_stats
WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
  AND NOT inherited

-- Column names of every user table, to resolve unqualified columns in joins and to know
-- what "SELECT *" needs.
SELECT /* opscope */ n.nspname AS schema,
       c.relname AS table_name,
       array_agg(a.attname::text ORDER BY a.attnum) AS columns
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm', 'p')
  AND a.attnum > 0
  AND NOT a.attisdropped
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_(toast|temp_)'
GROUP BY n.nspname, c.relname

-- Every relation name of the user schemas (or of one schema): tables, indexes, sequences,
-- views, materialized views, composite types and foreign tables share pg_class's namespace,
-- so an index opscope names must be free among all of them.
SELECT /* opscope */ n.nspname AS schema, c.relname AS name
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE (%(schema)s::text IS NULL OR n.nspname = %(schema)s::text)
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_(toast|temp_)'

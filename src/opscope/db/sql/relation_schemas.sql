-- The schemas holding a relation of each given name: how an unqualified name in a statement
-- can be resolved when opscope's own search_path does not find it.
SELECT /* opscope */ c.relname AS name, array_agg(DISTINCT n.nspname::text) AS schemas
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname = ANY(%(names)s::text[])
  AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_(toast|temp_)'
GROUP BY c.relname

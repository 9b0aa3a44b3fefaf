-- Whether an index of this name exists in the schema, and whether it is valid: what an
-- interrupted CREATE INDEX CONCURRENTLY left.
SELECT /* opscope */ i.indisvalid AS valid
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s::text AND c.relname = %(name)s::text

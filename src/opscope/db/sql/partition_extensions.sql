-- pg_partman, when installed in this database: its schema and version.
SELECT /* opscope */ n.nspname AS schema, e.extversion AS version
FROM pg_extension e
JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'pg_partman'

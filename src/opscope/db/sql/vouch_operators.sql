/* opscope */
-- Which operators run only immutable or stable functions (a user-defined operator can hide
-- any function). An operator that does not exist under that name is not returned.
SELECT f.schema_name, f.name
FROM unnest(%(schemas)s::text[], %(names)s::text[]) AS f(schema_name, name)
JOIN pg_operator o ON o.oprname = f.name
JOIN pg_namespace n ON n.oid = o.oprnamespace
JOIN pg_proc p ON p.oid = o.oprcode
WHERE f.schema_name = '' OR n.nspname = f.schema_name
GROUP BY f.schema_name, f.name
HAVING bool_and(p.provolatile IN ('i', 's'))

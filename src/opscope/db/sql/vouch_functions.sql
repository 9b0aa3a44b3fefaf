/* opscope */
-- Which (schema, name) pairs name only functions that cannot change anything: every overload
-- is immutable or stable (a user-defined aggregate also needs its state functions to be), or
-- it is one of pg_catalog's volatile-but-harmless functions (random(), the clocks). A pair with
-- no function at all is not returned, so it is not vouched for.
SELECT f.schema_name, f.name
FROM unnest(%(schemas)s::text[], %(names)s::text[]) AS f(schema_name, name)
JOIN pg_proc p ON p.proname = f.name
JOIN pg_namespace n ON n.oid = p.pronamespace
LEFT JOIN pg_aggregate a ON a.aggfnoid = p.oid
WHERE f.schema_name = '' OR n.nspname = f.schema_name
GROUP BY f.schema_name, f.name
HAVING bool_and(
    CASE
        WHEN n.nspname = 'pg_catalog' AND p.proname = ANY(%(harmless)s::text[]) THEN true
        WHEN p.prokind = 'a' THEN n.nspname = 'pg_catalog' OR NOT EXISTS (
            SELECT 1 FROM pg_proc s
            WHERE s.oid IN (a.aggtransfn, a.aggfinalfn, a.aggcombinefn)
              AND s.provolatile = 'v')
        ELSE p.provolatile IN ('i', 's') AND p.prokind IN ('f', 'w')
    END)

-- The functions one entry of plans.read_only_functions names: every overload of schema.name,
-- or the one taking exactly the given argument types (read as to_regtype reads them; a type
-- that does not exist matches nothing).
SELECT /* opscope */ p.oid
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = %(schema)s
  AND p.proname = %(name)s
  AND (%(any_args)s
       -- oidvector casts to an array starting at 0: unnest both to compare the elements
       OR ARRAY(SELECT unnest(p.proargtypes::oid[]))
          = ARRAY(SELECT to_regtype(a)::oid
                  FROM unnest(%(args)s::text[]) WITH ORDINALITY AS x(a, i) ORDER BY i))

-- Of the functions a statement may reach that are not known to be read-only, those the
-- planner itself may call: an immutable or stable function with constant arguments is
-- evaluated while planning (constant folding, selectivity estimates), EXPLAIN or not.
-- Aggregates and window functions are never called that way (their support functions are
-- listed on their own), and functions in C or internal code only a superuser can create.
SELECT /* opscope */ format('%%s.%%s(%%s)', quote_ident(n.nspname), quote_ident(p.proname),
              pg_get_function_identity_arguments(p.oid)) AS label,
       CASE p.provolatile WHEN 'i' THEN 'IMMUTABLE' ELSE 'STABLE' END AS volatility
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_language l ON l.oid = p.prolang
WHERE p.oid = ANY(%(oids)s::oid[])
  AND p.provolatile <> 'v'
  AND p.prokind = 'f'
  AND l.lanname NOT IN ('c', 'internal')
ORDER BY p.oid

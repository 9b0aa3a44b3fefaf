/* opscope */
-- Which of the given function names are safe to run under EXPLAIN ANALYZE: every overload
-- visible under that name is immutable or stable (PL/pgSQL refuses writes in such functions,
-- and the session is read-only besides). Names not returned are not vouched for.
SELECT p.proname AS name
FROM pg_proc p
WHERE p.proname = ANY(%(names)s::text[])
GROUP BY p.proname
HAVING bool_and(p.provolatile IN ('i', 's') AND p.prokind IN ('f', 'a', 'w'))

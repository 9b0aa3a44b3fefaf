/* opscope */
-- The locks of the sessions in a blocking chain: what each waits for (not granted), and what
-- the others hold on the same objects.
SELECT l.pid,
       l.locktype,
       l.mode,
       l.granted,
       CASE WHEN l.relation IS NOT NULL
            THEN (SELECT n.nspname || '.' || c.relname
                  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.oid = l.relation)
       END AS relation,
       l.transactionid::text AS transactionid,
       l.virtualxid
FROM pg_locks l
WHERE l.pid = ANY(%(pids)s)
ORDER BY l.pid, l.granted

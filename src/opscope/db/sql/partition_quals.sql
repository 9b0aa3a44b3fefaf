-- The comparisons pg_qualstats saw on the tables given (oids), with their constants: which
-- columns the workload filters on, and how far back its time ranges reach.
SELECT /* opscope */ q.lrelid::bigint AS table_oid,
       a.attname AS column_name,
       o.oprname AS operator,
       q.constvalue::text AS constvalue,
       sum(q.execution_count)::bigint AS executions
FROM pg_qualstats() q
JOIN pg_attribute a ON a.attrelid = q.lrelid AND a.attnum = q.lattnum
JOIN pg_operator o ON o.oid = q.opno
WHERE q.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND q.lrelid = ANY(%(oids)s::oid[])
GROUP BY q.lrelid, a.attname, o.oprname, q.constvalue

-- Every partitioned table with its strategy and key, and each of its direct partitions with
-- its bound as PostgreSQL prints it (FOR VALUES FROM (...) TO (...), IN (...), WITH (...),
-- DEFAULT); a partitioned table without partitions comes once, with no partition.
SELECT /* opscope */ p.partrelid::bigint AS parent_oid,
       p.partstrat::text AS strategy,
       pg_get_partkeydef(p.partrelid) AS key_definition,
       (SELECT array_agg(a.attname::text ORDER BY k.ord)
        FROM unnest(p.partattrs::int2[]) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = k.attnum) AS key_columns,
       (SELECT array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY k.ord)
        FROM unnest(p.partattrs::int2[]) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = k.attnum) AS key_types,
       i.inhrelid::bigint AS partition_oid,
       pg_get_expr(c.relpartbound, c.oid) AS bound
FROM pg_partitioned_table p
JOIN pg_class pc ON pc.oid = p.partrelid
JOIN pg_namespace n ON n.oid = pc.relnamespace
LEFT JOIN pg_inherits i ON i.inhparent = p.partrelid
LEFT JOIN pg_class c ON c.oid = i.inhrelid
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_(toast|temp_)'
ORDER BY p.partrelid, c.relname

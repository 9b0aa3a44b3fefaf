SELECT /* opscope */ con.oid::bigint AS oid,
       con.conname AS name,
       n.nspname AS schema,
       t.relname AS table_name,
       con.conrelid::bigint AS table_oid,
       con.conkey::int2[] AS attnums,
       ARRAY(SELECT a.attname::text
             FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
             ORDER BY k.ord) AS columns,
       rn.nspname AS referenced_schema,
       rt.relname AS referenced_table,
       con.confrelid::bigint AS referenced_oid,
       con.confdeltype::text AS on_delete,
       con.confupdtype::text AS on_update
FROM pg_constraint con
JOIN pg_class t ON t.oid = con.conrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_class rt ON rt.oid = con.confrelid
JOIN pg_namespace rn ON rn.oid = rt.relnamespace
WHERE con.contype = 'f'
  -- clones PostgreSQL keeps per partition of a partitioned table (either side) are left out:
  -- the constraint on the parent stands for them
  AND con.conparentid = 0
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY n.nspname, t.relname, con.conname

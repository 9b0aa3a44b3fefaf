-- How the note names the objects on the way to one that may not run (vouch_reach.sql).
SELECT /* opscope */ nd.kind, nd.oid, x.label
FROM unnest(%(kinds)s::text[], %(oids)s::oid[]) AS nd(kind, oid)
CROSS JOIN LATERAL (
    SELECT format('%%I.%%I(%%s)', n.nspname, p.proname,
                  array_to_string(ARRAY(SELECT format_type(a, NULL)
                                        FROM unnest(p.proargtypes::oid[]) AS a), ', '))
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE nd.kind = 'func' AND p.oid = nd.oid
    UNION ALL
    SELECT CASE c.relkind WHEN 'v' THEN 'view ' WHEN 'm' THEN 'materialized view '
                          WHEN 'f' THEN 'foreign table ' ELSE 'table ' END
           || format('%%I.%%I', n.nspname, c.relname)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE nd.kind = 'rel' AND c.oid = nd.oid
    UNION ALL
    SELECT CASE t.typtype WHEN 'd' THEN 'domain ' ELSE 'type ' END || format_type(t.oid, NULL)
    FROM pg_type t WHERE nd.kind = 'type' AND t.oid = nd.oid
    UNION ALL
    SELECT format('cast %%s -> %%s', format_type(k.castsource, NULL),
                  format_type(k.casttarget, NULL))
    FROM pg_cast k WHERE nd.kind = 'cast' AND k.oid = nd.oid
    UNION ALL
    SELECT format('operator %%I.%%s(%%s, %%s)', n.nspname, o.oprname,
                  coalesce(format_type(nullif(o.oprleft, 0), NULL), 'NONE'),
                  format_type(o.oprright, NULL))
    FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
    WHERE nd.kind = 'oper' AND o.oid = nd.oid
    UNION ALL
    SELECT format('policy %%I on %%I.%%I', pol.polname, n.nspname, c.relname)
    FROM pg_policy pol
    JOIN pg_class c ON c.oid = pol.polrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE nd.kind = 'policy' AND pol.oid = nd.oid
    UNION ALL
    SELECT format('constraint %%I of domain %%s', con.conname, format_type(con.contypid, NULL))
    FROM pg_constraint con WHERE nd.kind = 'con' AND con.oid = nd.oid
    UNION ALL
    -- a view's rule is named as its view
    SELECT format('view %%I.%%I', n.nspname, c.relname)
    FROM pg_rewrite w
    JOIN pg_class c ON c.oid = w.ev_class
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE nd.kind = 'rule' AND w.oid = nd.oid
) AS x(label)

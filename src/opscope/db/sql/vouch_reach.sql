-- Everything a statement can make the executor run, from the names in its text (and plan),
-- closed over the catalog; one row per edge (kind, oid) <- (from_kind, from_oid), seeds
-- have no from. Kinds: rel, type, func, oper, cast, rule, policy, con (domain constraint).
--
-- Names in the text are not typed, so they resolve generously: a call reaches every overload
-- on the search_path (or the schema it names) of a fitting arity that is not hidden by one
-- of the same argument types earlier on the path; when the call fixes its arguments' types,
-- only overloads taking a type the statement can produce. Those types are the columns of
-- every relation reached, literals, named types, and whatever reached functions, operators
-- and implicit casts produce, with array, element, base and range types.
-- What is stored (views' rules, policies, domain constraints) is exact: pg_depend records
-- every object it uses except the pinned built-ins, which its node tree names by OID.
-- Objects initdb created (OID below 16384) lead only to their types: their functions are
-- immutable or stable built-ins (tests/test_plans_vouch.py checks this on the server), and
-- only a superuser could change them; and those types lead nowhere else unless way_out.
WITH /* opscope */ RECURSIVE
search AS (
    SELECT n.oid AS nsp, s.ord
    FROM unnest(current_schemas(true)) WITH ORDINALITY AS s(nspname, ord)
    JOIN pg_namespace n ON n.nspname = s.nspname
),
-- `plan`: the name is only in the plan, not in the text (the note prefers paths from the text)
relation_seed AS (
    SELECT to_regclass(CASE WHEN x.nspname = '' THEN format('%%I', x.relname)
                       ELSE format('%%I.%%I', x.nspname, x.relname) END)::oid AS oid,
           bool_and(x.plan) AS plan
    FROM unnest(%(rel_schemas)s::text[], %(rel_names)s::text[], %(rel_plan)s::bool[])
         AS x(nspname, relname, plan)
    GROUP BY 1
),
-- `target`: some expression is cast to it (not only a literal)
type_seed AS (
    SELECT to_regtype(CASE WHEN x.nspname = '' THEN format('%%I', x.typname)
                      ELSE format('%%I.%%I', x.nspname, x.typname) END)::oid AS oid,
           bool_and(x.plan) AS plan,
           bool_or(x.target) AS target
    FROM unnest(%(type_schemas)s::text[], %(type_names)s::text[], %(type_plan)s::bool[],
                %(type_target)s::bool[]) AS x(nspname, typname, plan, target)
    GROUP BY 1
),
-- types of literals, system columns and SQL value functions (CURRENT_DATE, ...)
literal_seed AS (
    SELECT unnest(ARRAY['bool', 'int4', 'int8', 'numeric', 'text', 'unknown', 'bit', 'name',
                        'date', 'time', 'timetz', 'timestamp', 'timestamptz', 'tid', 'xid',
                        'cid', 'oid', 'record', 'xml']::regtype[])::oid AS oid
),
call_site AS (
    SELECT *
    FROM unnest(%(call_schemas)s::text[], %(call_names)s::text[], %(call_nargs)s::int[],
                %(call_free)s::bool[], %(call_plan)s::bool[]) AS c(nspname, name, nargs, free, plan)
),
function_candidate AS (
    SELECT p.oid,
           p.proargtypes::oid[] AS args,
           -- no argument type to wait for: reached whatever the statement's types
           bool_or(c.free OR EXISTS (SELECT 1 FROM pg_type a
                                     WHERE a.oid = ANY(p.proargtypes::oid[])
                                       AND a.typtype = 'p')) AS seeded,
           bool_and(c.plan) AS plan
    FROM call_site c
    JOIN pg_proc p ON p.proname = c.name
    JOIN pg_namespace n ON n.oid = p.pronamespace
    LEFT JOIN search s ON s.nsp = p.pronamespace
    WHERE CASE WHEN c.nspname = '' THEN s.ord IS NOT NULL ELSE n.nspname = c.nspname END
      AND (c.nargs BETWEEN p.pronargs - p.pronargdefaults AND p.pronargs
           OR (p.provariadic <> 0 AND c.nargs >= p.pronargs - 1))
      AND NOT (c.nspname = '' AND EXISTS (
          SELECT 1 FROM pg_proc q JOIN search sq ON sq.nsp = q.pronamespace
          WHERE q.proname = p.proname AND q.proargtypes = p.proargtypes AND sq.ord < s.ord))
    GROUP BY p.oid
),
operator_use AS (
    SELECT *
    FROM unnest(%(op_schemas)s::text[], %(op_names)s::text[], %(op_free)s::bool[],
                %(op_plan)s::bool[]) AS u(nspname, name, free, plan)
),
operator_candidate AS (
    SELECT o.oid,
           o.oprleft,
           o.oprright,
           bool_or(u.free OR EXISTS (SELECT 1 FROM pg_type a
                                     WHERE a.oid IN (o.oprleft, o.oprright)
                                       AND a.typtype = 'p')) AS seeded,
           bool_and(u.plan) AS plan
    FROM operator_use u
    JOIN pg_operator o ON o.oprname = u.name
    JOIN pg_namespace n ON n.oid = o.oprnamespace
    LEFT JOIN search s ON s.nsp = o.oprnamespace
    WHERE CASE WHEN u.nspname = '' THEN s.ord IS NOT NULL ELSE n.nspname = u.nspname END
      AND NOT (u.nspname = '' AND EXISTS (
          SELECT 1 FROM pg_operator q JOIN search sq ON sq.nsp = q.oprnamespace
          WHERE q.oprname = o.oprname AND q.oprleft = o.oprleft AND q.oprright = o.oprright
            AND sq.ord < s.ord))
    GROUP BY o.oid
),
-- the types each candidate takes, with the base types of domains among them: an argument
-- of the base type is coerced to the domain without a cast
candidate_type(kind, oid, t) AS (
    SELECT 'func', f.oid, a.t FROM function_candidate f CROSS JOIN LATERAL unnest(f.args) AS a(t)
    UNION
    SELECT 'oper', o.oid, a.t
    FROM operator_candidate o
    CROSS JOIN LATERAL (VALUES (o.oprleft), (o.oprright)) AS a(t)
    WHERE a.t <> 0
    UNION
    SELECT c.kind, c.oid, d.typbasetype
    FROM candidate_type c JOIN pg_type d ON d.oid = c.t
    WHERE d.typtype = 'd'
),
-- the types an implicit cast may convert to: what a candidate takes (or the elements of an
-- array it takes), a condition's boolean, LIMIT's bigint, the text and xml of built-in
-- constructs; when a common type is chosen (CASE, COALESCE, IN lists, UNION, VALUES,
-- ARRAY[], USING joins, anycompatible arguments), any
wanted(t) AS (
    SELECT t FROM candidate_type
    UNION
    SELECT d.typelem FROM candidate_type c JOIN pg_type d ON d.oid = c.t WHERE d.typelem <> 0
    UNION
    SELECT unnest(ARRAY['bool', 'int8', 'float4', 'float8', 'text', 'xml']::regtype[])::oid
),
mixing(yes) AS (
    SELECT %(mixing)s::bool OR EXISTS (
        SELECT 1 FROM candidate_type c JOIN pg_type d ON d.oid = c.t
        WHERE d.typname IN ('anycompatible', 'anycompatiblearray', 'anycompatiblenonarray',
                            'anycompatiblerange', 'anycompatiblemultirange')
          AND d.typnamespace = 'pg_catalog'::regnamespace)
),
-- initdb's types, casts, functions and operators only lead to one another, except through a
-- cast someone else created from one of those types, or a candidate someone else created
-- that takes one. Without such a way out, initdb's types need not be followed at all (most
-- statements, in most databases: it saves most of the work).
way_out(yes) AS (
    SELECT EXISTS (
        SELECT 1 FROM pg_cast c
        WHERE c.oid >= 16384 AND c.castsource < 16384
          AND (c.castcontext = 'i' OR c.casttarget IN (SELECT oid FROM type_seed WHERE target)))
        OR EXISTS (SELECT 1 FROM candidate_type WHERE oid >= 16384 AND t < 16384)
),
reach(kind, oid, from_kind, from_oid, how) AS (
    SELECT 'rel', oid, NULL::text, NULL::oid, CASE WHEN plan THEN 'plan' ELSE 'named' END
    FROM relation_seed WHERE oid IS NOT NULL
    UNION
    SELECT 'type', oid, NULL, NULL, CASE WHEN plan THEN 'plan' ELSE 'named' END
    FROM type_seed WHERE oid IS NOT NULL
    UNION
    SELECT 'type', oid, NULL, NULL, 'literal' FROM literal_seed
    UNION
    SELECT 'func', oid, NULL, NULL, CASE WHEN plan THEN 'plan' ELSE 'call' END
    FROM function_candidate WHERE seeded
    UNION
    SELECT 'oper', oid, NULL, NULL, CASE WHEN plan THEN 'plan' ELSE 'call' END
    FROM operator_candidate WHERE seeded
    UNION
    SELECT e.kind, e.oid, r.kind, r.oid, e.how
    FROM reach r
    CROSS JOIN LATERAL (
        -- a relation: its columns and row type, a (user's) view's rule, the row-level
        -- security policies of a table that enables it, its inheritance children
        SELECT 'type'::text AS kind, a.atttypid AS oid, 'column'::text AS how
        FROM pg_attribute a
        WHERE r.kind = 'rel' AND a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
        UNION ALL
        SELECT 'type', c.reltype, 'row type'
        FROM pg_class c WHERE r.kind = 'rel' AND c.oid = r.oid AND c.reltype <> 0
        UNION ALL
        -- initdb's views use only built-ins
        SELECT 'rule', w.oid, 'rule'
        FROM pg_rewrite w WHERE r.kind = 'rel' AND r.oid >= 16384 AND w.ev_class = r.oid
        UNION ALL
        SELECT 'policy', p.oid, 'policy'
        FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
        WHERE r.kind = 'rel' AND p.polrelid = r.oid AND c.relrowsecurity
        UNION ALL
        SELECT 'rel', i.inhrelid, 'child'
        FROM pg_inherits i WHERE r.kind = 'rel' AND i.inhparent = r.oid
        UNION ALL
        -- a type: its I/O functions (binary send and receive serve only the wire protocol
        -- and COPY; initdb's types use immutable and stable built-ins), related types,
        -- domain constraints, casts from it
        SELECT 'func', f.oid, f.how
        FROM pg_type t
        CROSS JOIN LATERAL (VALUES (t.typinput::oid, 'input function'),
                                   (t.typoutput::oid, 'output function'),
                                   (t.typmodin::oid, 'typmod input function'),
                                   (t.typmodout::oid, 'typmod output function'),
                                   (t.typsubscript::oid, 'subscript handler')) AS f(oid, how)
        WHERE r.kind = 'type' AND r.oid >= 16384 AND t.oid = r.oid AND f.oid <> 0
        UNION ALL
        SELECT 'type', x.oid, x.how
        FROM pg_type t
        CROSS JOIN LATERAL (VALUES (t.typelem, 'element type'), (t.typarray, 'array type'),
                                   (t.typbasetype, 'base type')) AS x(oid, how)
        WHERE r.kind = 'type' AND t.oid = r.oid AND x.oid <> 0
        UNION ALL
        SELECT 'rel', t.typrelid, 'composite'
        FROM pg_type t WHERE r.kind = 'type' AND t.oid = r.oid AND t.typrelid <> 0
        UNION ALL
        SELECT x.kind, x.oid, x.how
        FROM pg_range g
        CROSS JOIN LATERAL (VALUES ('type', g.rngsubtype::oid, 'subtype'),
                                   ('type', g.rngmultitypid::oid, 'multirange'),
                                   ('func', g.rngcanonical::oid, 'canonical function'),
                                   ('func', g.rngsubdiff::oid, 'subtype difference'))
             AS x(kind, oid, how)
        WHERE r.kind = 'type' AND g.rngtypid = r.oid AND x.oid <> 0
        UNION ALL
        SELECT 'type', g.rngtypid, 'range'
        FROM pg_range g WHERE r.kind = 'type' AND g.rngmultitypid = r.oid
        UNION ALL
        SELECT 'con', c.oid, 'constraint'
        FROM pg_constraint c WHERE r.kind = 'type' AND c.contypid = r.oid
        UNION ALL
        -- implicit casts to a type that may be wanted, explicit ones to a type the text
        -- casts an expression to
        SELECT 'cast', c.oid, 'cast'
        FROM pg_cast c
        WHERE r.kind = 'type' AND c.castsource = r.oid
          AND ((c.castcontext = 'i' AND ((SELECT yes FROM mixing)
                                         OR c.casttarget IN (SELECT t FROM wanted)))
               OR c.casttarget IN (SELECT oid FROM type_seed WHERE target))
        UNION ALL
        -- a candidate taking this type
        SELECT c.kind, c.oid, 'call'
        FROM candidate_type c
        WHERE r.kind = 'type' AND c.t = r.oid
          AND NOT coalesce((SELECT f.seeded FROM function_candidate f
                            WHERE c.kind = 'func' AND f.oid = c.oid),
                           (SELECT o.seeded FROM operator_candidate o
                            WHERE c.kind = 'oper' AND o.oid = c.oid))
        UNION ALL
        -- a cast: its function (initdb's casts use immutable and stable built-ins), and what
        -- it produces
        SELECT 'func', c.castfunc, 'cast function'
        FROM pg_cast c WHERE r.kind = 'cast' AND r.oid >= 16384 AND c.oid = r.oid AND c.castfunc <> 0
        UNION ALL
        SELECT 'type', c.casttarget, 'cast target'
        FROM pg_cast c WHERE r.kind = 'cast' AND c.oid = r.oid
        UNION ALL
        -- a function: the types a call takes and returns (those of I/O, cast and operator
        -- functions are already reached), its planner support function, an aggregate's
        -- support functions, and its argument defaults (evaluated by the caller)
        SELECT 'type', x.oid, 'signature'
        FROM pg_proc p
        CROSS JOIN LATERAL unnest(p.proargtypes::oid[] || coalesce(p.proallargtypes, '{}')
                                  || p.prorettype) AS x(oid)
        WHERE r.kind = 'func' AND r.how = 'call' AND p.oid = r.oid
        UNION ALL
        SELECT 'func', p.prosupport, 'planner support'
        FROM pg_proc p
        WHERE r.kind = 'func' AND r.oid >= 16384 AND p.oid = r.oid AND p.prosupport <> 0
        UNION ALL
        SELECT x.kind, x.oid, x.how
        FROM pg_aggregate g
        CROSS JOIN LATERAL (VALUES ('func', g.aggtransfn::oid, 'transition function'),
                                   ('func', g.aggfinalfn::oid, 'final function'),
                                   ('func', g.aggcombinefn::oid, 'combine function'),
                                   ('func', g.aggserialfn::oid, 'serial function'),
                                   ('func', g.aggdeserialfn::oid, 'deserial function'),
                                   ('func', g.aggmtransfn::oid, 'moving transition function'),
                                   ('func', g.aggminvtransfn::oid, 'inverse transition function'),
                                   ('func', g.aggmfinalfn::oid, 'moving final function'),
                                   ('oper', g.aggsortop::oid, 'sort operator'),
                                   ('type', g.aggtranstype::oid, 'state type'),
                                   ('type', g.aggmtranstype::oid, 'state type'))
             AS x(kind, oid, how)
        WHERE r.kind = 'func' AND r.oid >= 16384 AND g.aggfnoid = r.oid AND x.oid <> 0
        UNION ALL
        SELECT CASE WHEN m[1] = 'opno' THEN 'oper' ELSE 'func' END, m[2]::oid, 'default'
        FROM pg_proc p
        CROSS JOIN LATERAL regexp_matches(p.proargdefaults::text,
                                          ':(funcid|aggfnoid|winfnoid|opno) (\d+)', 'g') AS m
        WHERE r.kind = 'func' AND r.oid >= 16384 AND p.oid = r.oid
          AND p.proargdefaults IS NOT NULL
        UNION ALL
        -- an operator: its function and estimators, commutator and negator (the planner may
        -- rewrite a clause with either), operand and result types
        SELECT x.kind, x.oid, x.how
        FROM pg_operator o
        CROSS JOIN LATERAL (VALUES ('func', o.oprcode::oid, 'function'),
                                   ('func', o.oprrest::oid, 'restriction estimator'),
                                   ('func', o.oprjoin::oid, 'join estimator'),
                                   ('oper', o.oprcom, 'commutator'),
                                   ('oper', o.oprnegate, 'negator')) AS x(kind, oid, how)
        WHERE r.kind = 'oper' AND r.oid >= 16384 AND o.oid = r.oid AND x.oid <> 0
        UNION ALL
        SELECT 'type', x.oid, x.how
        FROM pg_operator o
        CROSS JOIN LATERAL (VALUES (o.oprleft, 'operand'), (o.oprright, 'operand'),
                                   (o.oprresult, 'result')) AS x(oid, how)
        WHERE r.kind = 'oper' AND o.oid = r.oid AND x.oid <> 0
        UNION ALL
        -- a stored expression: what pg_depend records...
        SELECT CASE d.refclassid WHEN 'pg_proc'::regclass THEN 'func'
                                 WHEN 'pg_operator'::regclass THEN 'oper'
                                 WHEN 'pg_type'::regclass THEN 'type'
                                 ELSE 'rel' END,
               d.refobjid, 'uses'
        FROM pg_depend d
        WHERE r.kind IN ('rule', 'policy', 'con')
          AND d.classid = CASE r.kind WHEN 'rule' THEN 'pg_rewrite'::regclass
                                      WHEN 'policy' THEN 'pg_policy'::regclass
                                      ELSE 'pg_constraint'::regclass END
          AND d.objid = r.oid
          AND d.refclassid IN ('pg_proc'::regclass, 'pg_operator'::regclass,
                               'pg_type'::regclass, 'pg_class'::regclass)
        UNION ALL
        -- ...and the functions and operators it calls that pg_depend leaves out (built-ins
        -- are pinned, so never recorded), by OID from the stored node tree
        SELECT CASE WHEN m[1] IN ('opno', 'eqop', 'sortop') THEN 'oper' ELSE 'func' END,
               m[2]::oid, 'uses'
        FROM (SELECT w.ev_action::text || coalesce(w.ev_qual::text, '')
              FROM pg_rewrite w WHERE r.kind = 'rule' AND w.oid = r.oid
              UNION ALL
              SELECT coalesce(p.polqual::text, '') || coalesce(p.polwithcheck::text, '')
              FROM pg_policy p WHERE r.kind = 'policy' AND p.oid = r.oid
              UNION ALL
              SELECT coalesce(c.conbin::text, '')
              FROM pg_constraint c WHERE r.kind = 'con' AND c.oid = r.oid) AS tree(body)
        CROSS JOIN LATERAL regexp_matches(
            tree.body, ':(funcid|aggfnoid|winfnoid|tsmhandler|opno|eqop|sortop) (\d+)', 'g'
        ) AS m
    ) AS e
    WHERE r.kind <> 'type' OR r.oid >= 16384 OR (SELECT yes FROM way_out)
),
node AS (
    SELECT DISTINCT kind, oid FROM reach WHERE kind IN ('func', 'rel')
),
-- why a function or relation may not run under EXPLAIN ANALYZE (NULL: it may)
problem AS (
    SELECT nd.kind, nd.oid, x.problem
    FROM node nd
    CROSS JOIN LATERAL (
        SELECT 'foreign' AS problem
        FROM pg_class c WHERE nd.kind = 'rel' AND c.oid = nd.oid AND c.relkind = 'f'
        UNION ALL
        SELECT CASE
                   WHEN p.oid < 16384 AND p.pronamespace = 'pg_catalog'::regnamespace THEN
                       CASE WHEN p.proname = ANY(%(harmless)s::text[])
                              OR (p.provolatile <> 'v'
                                  AND NOT p.proname = ANY(%(denied)s::text[]))
                            THEN NULL ELSE 'builtin' END
                   WHEN p.oid = ANY(%(allowed)s::oid[]) THEN NULL
                   -- an extension the user trusts keeps the promise of its volatility
                   WHEN p.provolatile <> 'v' AND NOT p.proname = ANY(%(denied)s::text[])
                        AND EXISTS (SELECT 1 FROM pg_depend x
                                    JOIN pg_extension ext ON ext.oid = x.refobjid
                                    WHERE x.classid = 'pg_proc'::regclass AND x.objid = p.oid
                                      AND x.refclassid = 'pg_extension'::regclass
                                      AND x.deptype = 'e'
                                      AND ext.extname = ANY(%(extensions)s::text[])) THEN NULL
                   ELSE 'function'
               END
        FROM pg_proc p WHERE nd.kind = 'func' AND p.oid = nd.oid
    ) AS x
    WHERE x.problem IS NOT NULL
)
SELECT r.kind, r.oid, r.from_kind, r.from_oid, r.how, pr.problem
FROM reach r
LEFT JOIN problem pr ON pr.kind = r.kind AND pr.oid = r.oid

-- The parameter values pg_qualstats saw in each statement's quals: constant_position is where
-- the constant (or the $n it was bound to) sits in the statement's example text.
SELECT /* opscope */ DISTINCT ON (queryid, constant_position)
       queryid, constant_position, constvalue::text AS constvalue
FROM pg_qualstats()
WHERE queryid IS NOT NULL AND constvalue IS NOT NULL AND constant_position IS NOT NULL
ORDER BY queryid, constant_position, occurences DESC

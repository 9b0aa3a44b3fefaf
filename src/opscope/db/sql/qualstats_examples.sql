-- One example of each statement with its real constants, as pg_qualstats sampled it: plans
-- of these use the values the application really sends (custom plans, EXPLAIN ANALYZE when
-- read-only), where the normalized text only allows a generic plan.
SELECT /* opscope */ queryid, query
FROM pg_qualstats_example_queries()
WHERE queryid IS NOT NULL AND query IS NOT NULL

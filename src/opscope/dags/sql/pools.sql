SELECT p.pool, p.slots FROM {schema}.slot_pool p ORDER BY p.pool

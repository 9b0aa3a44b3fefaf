-- A hypothetical index, visible only to this session's planner; nothing is written.
SELECT /* opscope */ indexrelid::bigint AS oid, indexname AS name FROM hypopg_create_index(%(ddl)s)

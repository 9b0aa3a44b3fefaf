-- Settings the plan diagnosis weighs its advice against.
SELECT /* opscope */ (pg_size_bytes(current_setting('work_mem')) / 1024)::bigint AS work_mem_kb,
       current_setting('hash_mem_multiplier')::float8 AS hash_mem_multiplier,
       current_setting('default_statistics_target')::int AS default_statistics_target

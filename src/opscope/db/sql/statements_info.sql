SELECT /* opscope */ stats_reset, dealloc FROM {pgss}.pg_stat_statements_info

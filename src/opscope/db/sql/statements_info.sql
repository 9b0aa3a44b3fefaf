/* opscope */
SELECT stats_reset, dealloc FROM pg_stat_statements_info

"""Which of PostgreSQL's own functions may run under EXPLAIN ANALYZE.

A built-in is a function of pg_catalog whose OID is below FirstNormalObjectId (16384):
initdb created it, so it is PostgreSQL's code, not a user's. Only a superuser can add
functions to pg_catalog, and those get higher OIDs; extension functions are never built-in.

Built-ins declared immutable or stable are trusted: PostgreSQL's own code keeps that promise,
except for the few listed in DENIED. Volatile built-ins are refused unless HARMLESS lists
them. Audit of PostgreSQL 15 (`SELECT proname FROM pg_proc WHERE provolatile = 'v' AND
oid < 16384`, 252 functions): the volatile ones left out of HARMLESS write (nextval, setval,
lo_* large objects, pg_stat_reset*, replication slots and origins, pg_backup_*,
pg_switch_wal, pg_create_restore_point, brin_summarize_*, gin_clean_pending_list,
pg_import_system_collations, binary_upgrade_*), signal or stop other sessions
(pg_cancel_backend, pg_terminate_backend, pg_reload_conf, pg_rotate_logfile, pg_promote,
pg_wal_replay_pause/resume, pg_log_backend_memory_contexts), take locks that outlive the
statement (pg_advisory_*), change the session (set_config, setseed, pg_notify,
pg_stat_clear_snapshot, pg_export_snapshot, pg_replication_origin_session_setup), run SQL
given as text (query_to_xml*, cursor_to_xml*, ts_stat, ts_rewrite), read arbitrary server
files (pg_read_file, pg_read_binary_file, lo_import), sleep (pg_sleep*), or are trigger,
handler and language entry points that a statement has no business calling.
"""

from __future__ import annotations

#: volatile built-ins that only read: volatile because their result changes (the clocks,
#: random) or because they look at state outside the snapshot (sizes, WAL positions, locks)
HARMLESS = frozenset(
    {
        "random",
        "clock_timestamp",
        "timeofday",
        "gen_random_uuid",
        "currval",
        "lastval",
        "pg_sequence_last_value",
        "current_query",
        "pg_relation_size",
        "pg_table_size",
        "pg_indexes_size",
        "pg_total_relation_size",
        "pg_database_size",
        "pg_tablespace_size",
        "pg_is_in_recovery",
        "pg_current_wal_lsn",
        "pg_current_wal_insert_lsn",
        "pg_current_wal_flush_lsn",
        "pg_last_wal_receive_lsn",
        "pg_last_wal_replay_lsn",
        "pg_last_xact_replay_timestamp",
        "pg_is_wal_replay_paused",
        "pg_get_wal_replay_pause_state",
        "pg_get_wal_resource_managers",
        "pg_blocking_pids",
        "pg_safe_snapshot_blocking_pids",
        "pg_lock_status",
        "pg_prepared_xact",
        "pg_jit_available",
        "pg_notification_queue_usage",
        "pg_partition_tree",
        "pg_partition_ancestors",
        "pg_stat_get_xact_blocks_fetched",
        "pg_stat_get_xact_blocks_hit",
        "pg_stat_get_xact_function_calls",
        "pg_stat_get_xact_function_self_time",
        "pg_stat_get_xact_function_total_time",
        "pg_stat_get_xact_numscans",
        "pg_stat_get_xact_tuples_deleted",
        "pg_stat_get_xact_tuples_fetched",
        "pg_stat_get_xact_tuples_hot_updated",
        "pg_stat_get_xact_tuples_inserted",
        "pg_stat_get_xact_tuples_returned",
        "pg_stat_get_xact_tuples_updated",
        "pg_stat_get_recovery_prefetch",
        "pg_stat_have_stats",
        "pg_control_checkpoint",
        "pg_control_init",
        "pg_control_recovery",
        "pg_control_system",
        "pg_current_logfile",
        "pg_xact_commit_timestamp",
        "pg_xact_commit_timestamp_origin",
        "pg_last_committed_xact",
        "txid_status",
        "pg_collation_actual_version",
        "pg_database_collation_actual_version",
        "pg_get_multixact_members",
        "pg_get_shmem_allocations",
        "pg_get_backend_memory_contexts",
        "pg_show_all_file_settings",
        "pg_hba_file_rules",
        "pg_ident_file_mappings",
        "pg_show_replication_origin_status",
        # TABLESAMPLE methods
        "bernoulli",
        "system",
    }
)

#: non-volatile built-ins that still change something, or run what we cannot see
DENIED = frozenset(
    {
        # assign a transaction ID: the rolled-back EXPLAIN burns one and writes WAL
        "txid_current",
        "pg_current_xact_id",
        # read whole tables (or databases) chosen at run time, through their views,
        # row-level security policies and output functions, none of which the text shows
        "table_to_xml",
        "table_to_xmlschema",
        "table_to_xml_and_xmlschema",
        "schema_to_xml",
        "schema_to_xmlschema",
        "schema_to_xml_and_xmlschema",
        "database_to_xml",
        "database_to_xmlschema",
        "database_to_xml_and_xmlschema",
    }
)

/* opscope */
-- One round trip for everything server-wide that `opscope serve` exposes: the identity of
-- the statistics (epoch), pg_stat_database and its conflicts with each database's size,
-- sessions by state, locks by mode, the background writer, the archiver, replication,
-- slots and the numeric settings. Views are read with to_jsonb(), so columns a server
-- version adds or drops (PostgreSQL 14's session counters, 17's checkpointer) need no new
-- file; monitor.py picks the columns it knows.
SELECT current_database() AS database,
       current_setting('server_version') AS server_version,
       current_setting('server_version_num')::int AS server_version_num,
       now() AS now,
       pg_postmaster_start_time() AS postmaster_start,
       pg_is_in_recovery() AS in_recovery,
       (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier,
       (SELECT timeline_id FROM pg_control_checkpoint()) AS timeline,
       (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database())
           AS stats_reset,
       CASE WHEN pg_is_in_recovery()
            THEN GREATEST(0, EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()))
            ELSE 0 END::float8 AS replication_lag_s,
       (SELECT jsonb_agg(to_jsonb(d) || jsonb_build_object(
                   'conflicts_detail', to_jsonb(c),
                   'size_bytes', CASE WHEN d.datname IS NULL THEN NULL
                                      ELSE pg_database_size(d.datid) END))
        FROM pg_stat_database d
        LEFT JOIN pg_stat_database_conflicts c ON c.datid = d.datid
        WHERE d.datname IS NULL OR d.datname NOT IN ('template0')) AS databases,
       (SELECT jsonb_agg(jsonb_build_object(
                   'datname', a.datname, 'state', a.state, 'count', a.n,
                   'max_tx_duration', a.max_tx, 'waiting', a.waiting))
        FROM (SELECT datname, state, count(*) AS n,
                     COALESCE(max(EXTRACT(EPOCH FROM now() - xact_start)), 0)::float8 AS max_tx,
                     count(*) FILTER (WHERE wait_event_type = 'Lock') AS waiting
              FROM pg_stat_activity
              WHERE backend_type = 'client backend' AND datname IS NOT NULL
              GROUP BY datname, state) a) AS activity,
       (SELECT jsonb_agg(jsonb_build_object('datname', d.datname, 'mode', l.mode,
                                            'count', l.n))
        FROM (SELECT database, mode, count(*) AS n FROM pg_locks
              WHERE database IS NOT NULL GROUP BY database, mode) l
        JOIN pg_database d ON d.oid = l.database) AS locks,
       (SELECT array_agg(datname ORDER BY datname) FROM pg_database
        WHERE datallowconn) AS database_names,
       (SELECT to_jsonb(b) FROM pg_stat_bgwriter b) AS bgwriter,
       NULL::jsonb AS checkpointer,
       (SELECT to_jsonb(a) || jsonb_build_object('last_archive_age',
                   EXTRACT(EPOCH FROM now() - a.last_archived_time))
        FROM pg_stat_archiver a) AS archiver,
       (SELECT jsonb_agg(jsonb_build_object(
                   'application_name', r.application_name,
                   'client_addr', COALESCE(host(r.client_addr), ''),
                   'state', r.state,
                   'slot_name', COALESCE(s.slot_name, ''),
                   'current_wal_lsn_bytes',
                       CASE WHEN pg_is_in_recovery() THEN NULL
                            ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') END,
                   'wal_lsn_diff',
                       CASE WHEN pg_is_in_recovery() THEN NULL
                            ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn) END))
        FROM pg_stat_replication r
        LEFT JOIN pg_replication_slots s ON s.active_pid = r.pid) AS replication,
       (SELECT jsonb_agg(jsonb_build_object(
                   'slot_name', s.slot_name, 'database', COALESCE(s.database, ''),
                   'active', s.active,
                   'wal_lsn_diff',
                       CASE WHEN pg_is_in_recovery() THEN NULL
                            ELSE pg_wal_lsn_diff(pg_current_wal_lsn(),
                                                 COALESCE(s.confirmed_flush_lsn, s.restart_lsn))
                            END))
        FROM pg_replication_slots s) AS slots,
       (SELECT jsonb_agg(jsonb_build_object('name', name, 'setting', setting, 'unit', unit,
                                            'vartype', vartype))
        FROM pg_settings WHERE vartype IN ('bool', 'integer', 'real')) AS settings

/* opscope */
-- Standbys streaming from this server, and how far behind each is.
SELECT r.pid,
       r.application_name,
       r.client_addr::text AS client_addr,
       r.state,
       r.sync_state,
       extract(epoch FROM r.write_lag)::float8 AS write_lag_s,
       extract(epoch FROM r.flush_lag)::float8 AS flush_lag_s,
       extract(epoch FROM r.replay_lag)::float8 AS replay_lag_s,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn)::float8 END
           AS replay_lag_bytes
FROM pg_stat_replication r
ORDER BY r.application_name, r.pid

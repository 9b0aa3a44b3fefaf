/* opscope */
-- Replication slots and the WAL each keeps: a slot nobody reads holds WAL until the disk fills.
SELECT s.slot_name,
       s.slot_type,
       s.plugin,
       s.database,
       s.active,
       s.active_pid,
       s.wal_status,
       s.safe_wal_size::float8 AS safe_wal_size,
       CASE WHEN s.restart_lsn IS NULL THEN NULL
            WHEN pg_is_in_recovery() THEN pg_wal_lsn_diff(pg_last_wal_receive_lsn(), s.restart_lsn)::float8
            ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::float8 END
           AS retained_bytes,
       age(s.xmin)::bigint AS xmin_age,
       age(s.catalog_xmin)::bigint AS catalog_xmin_age
FROM pg_replication_slots s
ORDER BY s.slot_name

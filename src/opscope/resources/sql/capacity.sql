/* opscope */
-- What a database server can still take: its usable connection slots and the client
-- connections open now, in all and by application.
SELECT current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int
           + COALESCE((SELECT setting::int FROM pg_settings WHERE name = 'reserved_connections'), 0)
           AS reserved,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int
           AS connections,
       (SELECT COALESCE(json_object_agg(app, n), '{}'::json)
        FROM (SELECT COALESCE(application_name, '') AS app, count(*) AS n
              FROM pg_stat_activity WHERE backend_type = 'client backend'
              GROUP BY 1) a) AS by_application

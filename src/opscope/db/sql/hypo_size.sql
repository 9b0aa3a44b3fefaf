/* opscope */
SELECT hypopg_relation_size(%(oid)s::oid) AS bytes

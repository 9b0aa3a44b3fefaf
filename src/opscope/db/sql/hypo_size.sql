SELECT /* opscope */ hypopg_relation_size(%(oid)s::oid) AS bytes

SELECT /* opscope */ hypopg_drop_index(%(oid)s::oid) AS dropped

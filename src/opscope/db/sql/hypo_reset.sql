SELECT /* opscope */ hypopg_reset()

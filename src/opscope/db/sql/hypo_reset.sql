/* opscope */
SELECT hypopg_reset()

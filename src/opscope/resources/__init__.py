"""Resources and health: the host and its process groups (psutil), connection pools (from
the apps' /metrics and PgBouncer's console) sized with Little's law, and uptime probes;
`analyze_resources` runs them (`opscope analyze resources`)."""

"""What `opscope serve` collects from PostgreSQL, and what its stored history answers."""

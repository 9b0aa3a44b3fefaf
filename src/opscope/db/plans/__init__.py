"""Query plans: EXPLAIN run safely, parsed into a typed tree, diagnosed and rendered."""

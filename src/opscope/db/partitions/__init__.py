"""Partitioning: plans for tables worth partitioning (key, strategy, partitions, DDL,
migration), and the health of tables already partitioned."""

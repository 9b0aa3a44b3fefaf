"""Built-in PostgreSQL checks, published through the ``opscope.checks`` entry point group
exactly as a plugin's checks would be."""

from __future__ import annotations

from opscope.db.checks import advisor, indexes, partitions, plans, statements, tables

CHECKS = [
    *statements.CHECKS,
    *indexes.CHECKS,
    *tables.CHECKS,
    *partitions.CHECKS,
    *plans.CHECKS,
    *advisor.CHECKS,
]

"""Built-in PostgreSQL checks, published through the ``opscope.checks`` entry point group
exactly as a plugin's checks would be."""

from __future__ import annotations

from opscope.db.checks import (
    activity,
    advisor,
    indexes,
    partitions,
    plans,
    settings_advice,
    statements,
    tables,
)

CHECKS = [
    *statements.CHECKS,
    *indexes.CHECKS,
    *tables.CHECKS,
    *partitions.CHECKS,
    *plans.CHECKS,
    *advisor.CHECKS,
    *activity.CHECKS,
    *settings_advice.CHECKS,
]

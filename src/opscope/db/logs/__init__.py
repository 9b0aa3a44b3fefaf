"""Reading PostgreSQL (and PgBouncer) logs; the hot modules may run compiled (compiled.py)."""

from opscope.db.logs.compiled import activate

__path__ = activate(__path__)

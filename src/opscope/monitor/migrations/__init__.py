"""Alembic migrations of the history store, shipped in the package and run at start."""

"""Alembic's entry point: migrates the connection the store hands it (never a URL of its
own), so the same code upgrades SQLite and PostgreSQL stores."""

from __future__ import annotations

from alembic import context

from opscope.monitor.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite alters tables by copying them; batch mode does it for us
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()

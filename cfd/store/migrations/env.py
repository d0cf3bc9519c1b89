"""Alembic environment for the store. Run programmatically by cfd.store.schema.

The caller passes an open connection in ``config.attributes["connection"]``; there is no
offline (SQL script) mode.
"""

from __future__ import annotations

from alembic import context

from cfd.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "cfd.store migrations run through cfd.store (Store.open), which passes a connection"
    )
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()

"""Alembic environment: runs on the connection that ``jitpam.adapters.sql.migrate`` hands over."""

from __future__ import annotations

from alembic import context

from jitpam.adapters.sql.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through jitpam.adapters.sql.migrate")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

"""Alembic environment: runs on the connection the service hands it (see ``auth_service.migrate``)."""

from __future__ import annotations

from alembic import context

from auth_service.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `gatepass db upgrade` or the service's start-up")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

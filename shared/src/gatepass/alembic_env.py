"""The body of every gatepass service's Alembic ``env.py``.

A service's ``migrations/env.py`` is then two lines::

    from gatepass.alembic_env import run_migrations
    from edge_service_mail.models import Base

    run_migrations(Base.metadata)

Migrations run only on the connection :func:`gatepass.db.upgrade` hands over (inside its
transaction, after the PostgreSQL advisory lock), never on a URL of their own: the service's
start-up and its operators' tools migrate the same way, one replica at a time.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, MetaData

__all__ = ["run_migrations"]


def run_migrations(metadata: MetaData) -> None:
    """Run the pending migrations of ``metadata``'s schema on the handed-over connection."""
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "run migrations through the service's start-up or its operator command "
            "(gatepass.db.upgrade)"
        )
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things: batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()

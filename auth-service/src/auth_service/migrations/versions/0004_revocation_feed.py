"""the revocation feed: event ids never reused, the feed's epoch, events by kind and value

SQLite gives a deleted row's id again unless the table is AUTOINCREMENT: the events table is
rebuilt so (its rows and ids kept). PostgreSQL's sequence never does, so there it is left as is.
``revocation_feed`` holds the epoch, random per database: a cursor from another database (a
restored or reset one) then leads to a snapshot, never to silently missed events. The index on
``(kind, value)`` serves the issuer's own check of revoked token ids.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

EPOCH_BYTES = 12  # 16 base64url characters


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table(
            "revocation_events", recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ):
            pass
    op.create_index(
        "ix_revocation_events_kind_value", "revocation_events", ["kind", "value"], unique=False
    )
    feed = op.create_table(
        "revocation_feed",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("epoch", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(feed, [{"id": 1, "epoch": secrets.token_urlsafe(EPOCH_BYTES)}])


def downgrade() -> None:
    op.drop_table("revocation_feed")
    op.drop_index("ix_revocation_events_kind_value", table_name="revocation_events")
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table(
            "revocation_events", recreate="always", table_kwargs={"sqlite_autoincrement": False}
        ):
            pass

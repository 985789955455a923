"""mailboxes

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Mail is delivered only to a mailbox, made the first time a user presents a valid token. Everyone
who already sent mail did so with a valid token, so they get one now. Recipients are not given one:
the table alone cannot tell a user who has not come by yet from an id nobody owns; a real user
gets theirs, and the messages already sent to them, on their first request.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mailboxes",
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("owner"),
    )
    op.execute(
        "INSERT INTO mailboxes (owner, created_at) "
        "SELECT sender, MIN(created_at) FROM messages GROUP BY sender"
    )


def downgrade() -> None:
    op.drop_table("mailboxes")

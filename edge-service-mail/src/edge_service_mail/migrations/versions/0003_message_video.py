"""message video

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-10

A message may point at a video of the video service (``video_id``, checked with the video service
when the message is sent). Nullable: every message sent before has none.

Notifications need no column of their own: their sender is ``service:<client id>``, which fits
the ``sender`` column (client ids are at most 100 characters at the auth service).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("video_id", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("video_id")

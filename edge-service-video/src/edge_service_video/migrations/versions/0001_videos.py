"""videos

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "videos",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_videos_owner", "videos", ["owner"])
    op.create_index("ix_videos_created_at", "videos", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_videos_created_at", table_name="videos")
    op.drop_index("ix_videos_owner", table_name="videos")
    op.drop_table("videos")

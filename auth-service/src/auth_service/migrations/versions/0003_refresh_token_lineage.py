"""refresh-token lineage: one live token per session, numbered, each knowing its successor

Adds ``refresh_tokens.seq`` (the token's place in its session's lineage), ``replaced_by`` (the
token issued in exchange for it) and ``superseded_at`` (killed unused by a retry of its parent).
Existing rows are numbered by creation; where an older release forked a session into several
live tokens, only the newest stays live. Two unique indexes then hold the invariants: one number
per token in a session, at most one live token per session.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

LIVE = "rotated_at IS NULL AND superseded_at IS NULL"

NUMBER_BY_CREATION = """
UPDATE refresh_tokens SET seq = (
    SELECT COUNT(*) FROM refresh_tokens AS older
    WHERE older.session_id = refresh_tokens.session_id
      AND (older.created_at < refresh_tokens.created_at
           OR (older.created_at = refresh_tokens.created_at AND older.id < refresh_tokens.id))
)
"""

KEEP_NEWEST_LIVE = """
UPDATE refresh_tokens SET superseded_at = :now
WHERE rotated_at IS NULL AND EXISTS (
    SELECT 1 FROM refresh_tokens AS newer
    WHERE newer.session_id = refresh_tokens.session_id
      AND newer.rotated_at IS NULL
      AND newer.seq > refresh_tokens.seq
)
"""


def upgrade() -> None:
    with op.batch_alter_table("refresh_tokens") as batch_op:
        batch_op.add_column(sa.Column("seq", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("replaced_by", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("superseded_at", sa.DateTime(), nullable=True))
    op.execute(sa.text(NUMBER_BY_CREATION))
    now = datetime.now(UTC).replace(tzinfo=None)
    op.execute(sa.text(KEEP_NEWEST_LIVE).bindparams(sa.bindparam("now", now, type_=sa.DateTime())))
    op.create_index(
        "uq_refresh_tokens_session_seq", "refresh_tokens", ["session_id", "seq"], unique=True
    )
    op.create_index(
        "uq_refresh_tokens_live",
        "refresh_tokens",
        ["session_id"],
        unique=True,
        sqlite_where=sa.text(LIVE),
        postgresql_where=sa.text(LIVE),
    )


def downgrade() -> None:
    op.drop_index("uq_refresh_tokens_live", table_name="refresh_tokens")
    op.drop_index("uq_refresh_tokens_session_seq", table_name="refresh_tokens")
    with op.batch_alter_table("refresh_tokens") as batch_op:
        batch_op.drop_column("superseded_at")
        batch_op.drop_column("replaced_by")
        batch_op.drop_column("seq")

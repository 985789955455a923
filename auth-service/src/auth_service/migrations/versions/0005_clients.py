"""registered clients, the client assertions seen, and the audiences of a session's tokens

``clients`` holds the OAuth clients registered through the admin API or the CLI (clients in the
settings keep working beside them). ``client_assertions`` remembers each private_key_jwt
assertion's ``jti`` until it expires, so that a replayed one fails its insert on any replica.
``sessions.audiences`` is the audiences its user tokens name (NULL: the app default).

A revocation event's ``value`` may now be a client id (a disabled client's tokens have it as
``sub``), up to 100 characters: widened on PostgreSQL. SQLite does not enforce a VARCHAR length,
and rebuilding the events table there would lose the highest id it ever gave (the feed's
``sqlite_sequence``), so it is left as it is.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clients",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("auth_method", sa.String(length=32), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=True),
        sa.Column("jwks", sa.JSON(), nullable=True),
        sa.Column("jwks_uri", sa.String(length=2048), nullable=True),
        sa.Column("audiences", sa.JSON(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("resource", sa.String(length=100), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "client_assertions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=100), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_client_assertions_expires_at", "client_assertions", ["expires_at"], unique=False
    )
    with op.batch_alter_table("sessions") as batch_op:
        batch_op.add_column(sa.Column("audiences", sa.JSON(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "revocation_events",
            "value",
            type_=sa.String(length=100),
            existing_type=sa.String(length=64),
            existing_nullable=False,
        )


def downgrade() -> None:
    # Events naming a client id longer than 64 characters would not fit back: they are dropped
    # (they only ever revoke tokens of a client this schema does not know).
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DELETE FROM revocation_events WHERE length(value) > 64")
        op.alter_column(
            "revocation_events",
            "value",
            type_=sa.String(length=64),
            existing_type=sa.String(length=100),
            existing_nullable=False,
        )
    with op.batch_alter_table("sessions") as batch_op:
        batch_op.drop_column("audiences")
    op.drop_index("ix_client_assertions_expires_at", table_name="client_assertions")
    op.drop_table("client_assertions")
    op.drop_table("clients")

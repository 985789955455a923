"""OpenID Connect: authorization codes, apps' redirect URIs, and a signing key per purpose

``authorization_codes`` holds each code by its SHA-256 until it expires; ``used_at`` makes it
single use. ``clients`` gains the redirect URIs an app's codes may go to and the URIs RP-initiated
logout may return to. ``sessions.scope`` keeps the scopes a sign-in through an app asked for. ``signing_keys.purpose`` says what a key signs (``access`` tokens, or ``id``
tokens), each purpose with its own life cycle; every existing key signs access tokens.

RFC 9864 names the Ed25519 signature algorithm ``Ed25519`` and deprecates ``EdDSA``: stored
keys are renamed, so they are published and used under the new name.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "authorization_codes",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=100), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("session_id", sa.String(length=40), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("audiences", sa.JSON(), nullable=False),
        sa.Column("nonce", sa.Text(), nullable=True),
        sa.Column("code_challenge", sa.String(length=128), nullable=False),
        sa.Column("auth_time", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.Column("issued_session_id", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("code_hash"),
    )
    op.create_index(
        "ix_authorization_codes_user_id", "authorization_codes", ["user_id"], unique=False
    )
    op.create_index(
        "ix_authorization_codes_expires_at", "authorization_codes", ["expires_at"], unique=False
    )
    with op.batch_alter_table("clients") as batch_op:
        batch_op.add_column(sa.Column("redirect_uris", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("post_logout_redirect_uris", sa.JSON(), nullable=True))
    with op.batch_alter_table("sessions") as batch_op:
        batch_op.add_column(sa.Column("scope", sa.JSON(), nullable=True))
    with op.batch_alter_table("signing_keys") as batch_op:
        batch_op.add_column(
            sa.Column("purpose", sa.String(length=16), nullable=False, server_default="access")
        )
    op.execute("UPDATE signing_keys SET alg = 'Ed25519' WHERE alg = 'EdDSA'")


def downgrade() -> None:
    op.execute("UPDATE signing_keys SET alg = 'EdDSA' WHERE alg = 'Ed25519'")
    # Keys that signed ID tokens mean nothing to the older schema: they go.
    op.execute("DELETE FROM signing_keys WHERE purpose <> 'access'")
    with op.batch_alter_table("signing_keys") as batch_op:
        batch_op.drop_column("purpose")
    with op.batch_alter_table("sessions") as batch_op:
        batch_op.drop_column("scope")
    with op.batch_alter_table("clients") as batch_op:
        batch_op.drop_column("post_logout_redirect_uris")
        batch_op.drop_column("redirect_uris")
    op.drop_index("ix_authorization_codes_expires_at", table_name="authorization_codes")
    op.drop_index("ix_authorization_codes_user_id", table_name="authorization_codes")
    op.drop_table("authorization_codes")

"""The auth service's tables. Alembic migrations in ``migrations/`` create them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from gatepass.db import UTCDateTime


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[str]: JSON()}


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    roles: Mapped[list[str]]
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # Tokens issued before this (whole seconds) are revoked: logout-all, role change, disable.
    tokens_not_before: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Session(Base):
    """A signed-in device: one per login."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(String(100))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    ip: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(40))
    # The audiences the session's user tokens name; None: the app default (settings).
    audiences: Mapped[list[str] | None]
    # The scopes a sign-in through an app asked for (OpenID Connect's among them), kept within
    # the user's roles at every refresh; None: the roles' whole grant.
    scope: Mapped[list[str] | None]


# A live refresh token: neither exchanged nor superseded. A session has at most one.
_LIVE_LINK = "rotated_at IS NULL AND superseded_at IS NULL"


class RefreshToken(Base):
    """A refresh token, by its SHA-256 only: one link of its session's lineage.

    ``seq`` numbers the session's tokens (the live one has the highest); ``rotated_at`` is set
    when the token is exchanged, ``replaced_by`` names the token that exchange (or an honest retry
    of it) issued, and ``superseded_at`` is set when a retry of its parent killed it unused.
    """

    __tablename__ = "refresh_tokens"
    __table_args__ = (
        Index("uq_refresh_tokens_session_seq", "session_id", "seq", unique=True),
        Index(
            "uq_refresh_tokens_live",
            "session_id",
            unique=True,
            sqlite_where=text(_LIVE_LINK),
            postgresql_where=text(_LIVE_LINK),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    rotated_at: Mapped[datetime | None]
    replaced_by: Mapped[str | None] = mapped_column(String(40))
    superseded_at: Mapped[datetime | None]


class Client(Base):
    """A registered OAuth client (``registry.py``): a service that gets tokens of its own or
    exchanges users' tokens, or an app. A secret is kept as its SHA-256 only; keys as public JWKs
    (``jwks``) or where to fetch them (``jwks_uri``)."""

    __tablename__ = "clients"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # service | app
    # private_key_jwt | client_secret_basic | none
    auth_method: Mapped[str] = mapped_column(String(32))
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    jwks: Mapped[dict[str, Any] | None]
    jwks_uri: Mapped[str | None] = mapped_column(String(2048))
    audiences: Mapped[list[str]]  # the audiences it may ask for
    scopes: Mapped[list[str]]  # the scopes it may hold
    resource: Mapped[str | None] = mapped_column(String(100))  # the audience it serves itself
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # An app signing users in through the authorization endpoint: where codes may be sent
    # (compared exactly), and where RP-initiated logout may send the browser back to.
    redirect_uris: Mapped[list[str] | None]
    post_logout_redirect_uris: Mapped[list[str] | None]


class ClientAssertion(Base):
    """A client assertion's ``jti`` seen (RFC 7523 §3), kept until the assertion expires: the
    primary key is SHA-256 hex of client id and jti, so a second use fails its insert on any
    replica."""

    __tablename__ = "client_assertions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime] = mapped_column(index=True)


class SigningKey(Base):
    """A signing key: ``next`` -> ``active`` -> ``retired`` -> deleted; or ``revoked`` at once."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    # What it signs: ``access`` tokens or OpenID Connect ``id`` tokens; each purpose has its own
    # life cycle (an active key each, its own algorithm).
    purpose: Mapped[str] = mapped_column(String(16), default="access", server_default="access")
    state: Mapped[str] = mapped_column(String(16), index=True)
    public_jwk: Mapped[dict[str, Any]]
    private_key_enc: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    promote_after: Mapped[datetime | None]  # for a ``next`` key: when it starts signing
    activated_at: Mapped[datetime | None]
    retired_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class AuthorizationCode(Base):
    """An authorization code (RFC 6749 §4.1), by its SHA-256 only: single use, short-lived.

    ``session_id`` is the browser's sign-in the user approved with; ``issued_session_id`` the
    session its redemption opened for the client, revoked when the code is presented again."""

    __tablename__ = "authorization_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[str] = mapped_column(String(40))
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    audiences: Mapped[list[str]]
    nonce: Mapped[str | None] = mapped_column(Text)
    code_challenge: Mapped[str] = mapped_column(String(128))
    auth_time: Mapped[datetime]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None]
    issued_session_id: Mapped[str | None] = mapped_column(String(40))


class RevocationEvent(Base):
    """What the edges must learn: a session, a user's tokens before a time, a token id, a key.

    The id is the event's place in the revocation feed (:mod:`auth_service.feed`): never given
    twice (SQLite AUTOINCREMENT; a PostgreSQL sequence), so a follower's cursor always means the
    same place. ``(kind, value)`` is indexed for the issuer's own ``jti`` check."""

    __tablename__ = "revocation_events"
    __table_args__ = (
        Index("ix_revocation_events_kind_value", "kind", "value"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # session | user | client | jti | key
    # A sid, a sub (a user id, or a client id: up to 100 characters), a client id, a jti or a kid.
    value: Mapped[str] = mapped_column(String(100))
    not_before: Mapped[datetime | None]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class FeedEpoch(Base):
    """The revocation feed's epoch: random per database, made by its migration, so a cursor from
    another database (a restored or reset one) is told apart. One row."""

    __tablename__ = "revocation_feed"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    epoch: Mapped[str] = mapped_column(String(32))


class SecurityEvent(Base):
    """An audit record: refresh-token reuse, user disabled, key revoked."""

    __tablename__ = "security_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    user_id: Mapped[str | None] = mapped_column(String(40))
    session_id: Mapped[str | None] = mapped_column(String(40))
    ip: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class LoginThrottle(Base):
    """Recent failed logins for one key (an account, an address, or the pair)."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime]
    blocked_until: Mapped[datetime | None]


class Lock(Base):
    """A named row locked (UPDATE first in a transaction) so one replica at a time does a job."""

    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    holder: Mapped[str | None] = mapped_column(Text)
    taken_at: Mapped[datetime | None]

"""Revocation events: what edges must learn (the feed), and the checks the issuer itself applies.

An event lives only as long as the access tokens it can affect (access TTL plus leeway), so the
table stays small whatever the number of users.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.config import Settings
from auth_service.models import RevocationEvent, SecurityEvent, User
from auth_service.models import Session as DeviceSession

EventKind = Literal["session", "user", "jti", "key"]
LEEWAY = timedelta(seconds=60)


def record(
    db: AsyncSession,
    settings: Settings,
    kind: EventKind,
    value: str,
    now: datetime,
    *,
    not_before: datetime | None = None,
) -> None:
    db.add(
        RevocationEvent(
            kind=kind,
            value=value,
            not_before=not_before,
            created_at=now,
            expires_at=now + timedelta(seconds=settings.access_token_ttl) + LEEWAY,
        )
    )


def cut_off(now: datetime) -> datetime:
    """The first whole second at or after ``now``: token times are whole seconds (RFC 7519), so
    every token issued up to now has an ``iat`` before it."""
    whole = now.replace(microsecond=0)
    return whole if whole == now else whole + timedelta(seconds=1)


def revoke_user_tokens(db: AsyncSession, settings: Settings, user: User, now: datetime) -> None:
    """Revoke every token the user holds now; tokens issued from now on stay good (see
    :func:`issued_at`). Recorded on the user, for the issuer, and as an event, for the edges."""
    user.tokens_not_before = cut_off(now)
    record(db, settings, "user", user.id, now, not_before=user.tokens_not_before)


def issued_at(user: User, now: datetime) -> datetime:
    """``iat`` for a new token: never before the user's cut-off, which may be up to a second
    ahead of ``now`` (within any verifier's leeway)."""
    cut = user.tokens_not_before
    return cut if cut is not None and cut > now else now


def security_event(
    db: AsyncSession,
    kind: str,
    now: datetime,
    *,
    user_id: str | None = None,
    session_id: str | None = None,
    ip: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    db.add(
        SecurityEvent(
            kind=kind,
            user_id=user_id,
            session_id=session_id,
            ip=ip,
            detail=detail or {},
            created_at=now,
        )
    )


async def is_revoked(db: AsyncSession, claims: dict[str, Any], now: datetime) -> bool:
    """True when the issuer's own state says this (signature-valid) token no longer counts."""
    sub = claims.get("sub")
    sid = claims.get("sid")
    user = await db.get(User, sub) if isinstance(sub, str) else None
    if user is None or user.disabled:
        return True
    iat = datetime.fromtimestamp(int(claims.get("iat", 0)), now.tzinfo)
    if user.tokens_not_before is not None and iat < user.tokens_not_before:
        return True  # issued before a logout-everywhere, a role change or a disable
    if isinstance(sid, str):
        session = await db.get(DeviceSession, sid)
        if session is None or session.revoked_at is not None or session.expires_at <= now:
            return True
    return False


async def forget_expired(db: AsyncSession, now: datetime) -> int:
    result = await db.execute(delete(RevocationEvent).where(RevocationEvent.expires_at < now))
    return int(getattr(result, "rowcount", 0) or 0)

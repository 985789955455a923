"""Revocation events: what edges must learn (the feed), and the checks the issuer itself applies.

An event lives only as long as the access tokens it can affect (access TTL plus leeway), so the
table stays small whatever the number of users.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import delete, exists, select
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
    jti = claims.get("jti")
    iat = datetime.fromtimestamp(int(claims.get("iat", 0)), now.tzinfo)
    user = await db.get(User, sub) if isinstance(sub, str) else None
    if user is None or user.disabled:
        return True
    if isinstance(sid, str):
        session = await db.get(DeviceSession, sid)
        if session is None or session.revoked_at is not None or session.expires_at <= now:
            return True
    # Tokens issued before a logout-everywhere or a role change; a token id revoked by itself.
    user_cut = exists().where(
        RevocationEvent.kind == "user",
        RevocationEvent.value == sub,
        RevocationEvent.not_before > iat,
    )
    jti_cut = exists().where(RevocationEvent.kind == "jti", RevocationEvent.value == str(jti))
    return bool(await db.scalar(select(user_cut | jti_cut)))


async def forget_expired(db: AsyncSession, now: datetime) -> int:
    result = await db.execute(delete(RevocationEvent).where(RevocationEvent.expires_at < now))
    return int(getattr(result, "rowcount", 0) or 0)

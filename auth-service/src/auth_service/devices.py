"""Sessions (one per signed-in device) and the refresh-token rotation that keeps them alive.

Refresh tokens rotate on every use. A rotated token presented again within the grace window is an
honest concurrent retry (two tabs, a retried request): it gets a fresh pair in the same session.
Presented after the window it can only be a copy: the whole session is revoked (theft detection,
RFC 9700 §4.14.2) and a security event is recorded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service import revocation
from auth_service.errors import NotFoundError, OAuthError
from auth_service.keys import SigningMaterial
from auth_service.models import RefreshToken, User
from auth_service.models import Session as DeviceSession
from auth_service.state import Services
from auth_service.tokens import (
    AccessGrant,
    hash_refresh_token,
    new_id,
    new_refresh_token,
    scopes_for,
    sign_access_token,
)

log = logging.getLogger("gatepass.auth.sessions")


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str
    session_id: str
    scope: str


def _grant_error(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description)


async def open_session(
    svc: Services, user: User, *, client_id: str, user_agent: str | None, ip: str | None
) -> TokenPair:
    """A login: a new device session, its first refresh token and an access token."""
    now = svc.clock()
    session = DeviceSession(
        id=new_id("ses"),
        user_id=user.id,
        client_id=client_id,
        user_agent=(user_agent or "")[:512] or None,
        ip=ip,
        created_at=now,
        last_used_at=now,
        expires_at=now + timedelta(seconds=svc.settings.session_absolute_lifetime),
    )
    key = await svc.keys.signing_key()
    async with svc.sessions() as db:
        db.add(session)
        await db.flush()
        pair = _issue(svc, db, key, user, session, now=now)
        await db.commit()
    svc.metrics.tokens_issued.labels("password").inc()
    return pair


def _issue(
    svc: Services,
    db: AsyncSession,
    key: SigningMaterial,
    user: User,
    session: DeviceSession,
    *,
    now: datetime,
) -> TokenPair:
    refresh = new_refresh_token()
    db.add(
        RefreshToken(
            id=new_id("rt"),
            session_id=session.id,
            token_hash=hash_refresh_token(refresh),
            created_at=now,
            rotated_at=None,
        )
    )
    scopes = scopes_for(user.roles, svc.settings)
    grant = AccessGrant(user.id, session.id, session.client_id, scopes, svc.settings.audiences)
    access = sign_access_token(key, svc.settings, grant, revocation.issued_at(user, now))
    return TokenPair(access, svc.settings.access_token_ttl, refresh, session.id, " ".join(scopes))


def _session_problem(session: DeviceSession, svc: Services, now: datetime) -> str | None:
    if session.revoked_at is not None:
        return "The session has been signed out."
    if session.expires_at <= now:
        return "The session has reached its maximum lifetime."
    if now - session.last_used_at > timedelta(seconds=svc.settings.session_idle_timeout):
        return "The session has been idle for too long."
    return None


async def refresh(svc: Services, token: str, *, client_id: str | None, ip: str | None) -> TokenPair:
    """The refresh_token grant (RFC 6749 §6) with rotation and reuse detection."""
    now = svc.clock()
    key = await svc.keys.signing_key()
    async with svc.sessions() as db:
        # One round trip for the token, its session and its user.
        found = (
            await db.execute(
                select(RefreshToken, DeviceSession, User)
                .join(DeviceSession, DeviceSession.id == RefreshToken.session_id)
                .join(User, User.id == DeviceSession.user_id)
                .where(RefreshToken.token_hash == hash_refresh_token(token))
            )
        ).first()
        if found is None:
            raise _grant_error("The refresh token is not valid.")
        row, session, user = found.tuple()
        if client_id is not None and client_id != session.client_id:
            raise _grant_error("The refresh token was issued to another client.")
        problem = _session_problem(session, svc, now)
        if problem is None and user.disabled:
            problem = "The account is disabled."
        if problem is not None:
            raise _grant_error(problem)
        rotated_at = await _claim(db, row, now)
        if rotated_at is not None and now - rotated_at > timedelta(
            seconds=svc.settings.refresh_reuse_grace
        ):
            await _revoke_for_reuse(svc, db, session, row, ip=ip, now=now)
            await db.commit()
            raise _grant_error("The refresh token was already used; the session is revoked.")
        session.last_used_at = now
        pair = _issue(svc, db, key, user, session, now=now)
        await db.commit()
    svc.metrics.tokens_issued.labels("refresh_token").inc()
    return pair


async def _claim(db: AsyncSession, row: RefreshToken, now: datetime) -> datetime | None:
    """Mark the token rotated. None if this call rotated it, else when it was rotated before.

    The conditional UPDATE makes two concurrent uses of one token race safely: exactly one wins.
    """
    result = await db.execute(
        update(RefreshToken)
        .where(RefreshToken.id == row.id, RefreshToken.rotated_at.is_(None))
        .values(rotated_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) == 1:
        return None
    await db.refresh(row)
    return row.rotated_at or now


async def _revoke_for_reuse(
    svc: Services,
    db: AsyncSession,
    session: DeviceSession,
    row: RefreshToken,
    *,
    ip: str | None,
    now: datetime,
) -> None:
    session.revoked_at = now
    session.revoked_reason = "refresh_reuse"
    revocation.record(db, svc.settings, "session", session.id, now)
    revocation.security_event(
        db,
        "refresh_token_reuse",
        now,
        user_id=session.user_id,
        session_id=session.id,
        ip=ip,
        detail={"refresh_token_id": row.id},
    )
    svc.metrics.refresh_reuse.inc()
    log.warning(
        "refresh token reused after rotation; session revoked",
        extra={"user_id": session.user_id, "session_id": session.id, "client": ip},
    )


async def list_sessions(svc: Services, user_id: str) -> list[DeviceSession]:
    now = svc.clock()
    async with svc.sessions() as db:
        rows = await db.scalars(
            select(DeviceSession)
            .where(
                DeviceSession.user_id == user_id,
                DeviceSession.revoked_at.is_(None),
                DeviceSession.expires_at > now,
            )
            .order_by(DeviceSession.last_used_at.desc())
        )
        return list(rows)


async def revoke_session(svc: Services, user_id: str, session_id: str, reason: str) -> None:
    """Sign one device out. Another user's session is 'not found', never 'forbidden'."""
    now = svc.clock()
    async with svc.sessions() as db:
        session = await db.get(DeviceSession, session_id)
        if session is None or session.user_id != user_id:
            raise NotFoundError("No such session.")
        if session.revoked_at is None:
            session.revoked_at = now
            session.revoked_reason = reason
            revocation.record(db, svc.settings, "session", session.id, now)
            await db.commit()


async def revoke_all(svc: Services, user_id: str, reason: str) -> int:
    now = svc.clock()
    async with svc.sessions() as db:
        sessions = list(
            await db.scalars(
                select(DeviceSession).where(
                    DeviceSession.user_id == user_id, DeviceSession.revoked_at.is_(None)
                )
            )
        )
        for session in sessions:
            session.revoked_at = now
            session.revoked_reason = reason
        user = await db.get(User, user_id)
        if user is not None:
            revocation.revoke_user_tokens(db, svc.settings, user, now)
        await db.commit()
    return len(sessions)

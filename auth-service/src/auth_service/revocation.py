"""Revocation events: what edges must learn (the feed), and the checks the issuer itself applies.

An event lives only as long as the access tokens it can affect (access TTL plus leeway), so the
table stays small whatever the number of users.

The user-wide cut-off is exact although ``iat`` is whole seconds: a revocation at instant T sets
the cut-off to floor(T) + 1, a token is revoked iff its ``iat`` is before the cut-off, and nothing
is signed for a user while their cut-off is still ahead of the clock (:func:`after_cut_off` waits,
outside any transaction, then signs with ``iat`` = floor(now)). Two row locks order the reads: a
revoker locks the user row and only then reads the clock (:func:`user_to_revoke`), a signer reads
the clock and then the user under a shared lock (:func:`user_to_sign_for`). So a token carrying a
user's old state has an ``iat`` at or before the second of the revocation that changed it, and is
revoked by it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service import feed
from auth_service.clock import Sleep
from auth_service.config import Settings
from auth_service.errors import RevocationPendingError
from auth_service.models import RevocationEvent, SecurityEvent, User
from auth_service.models import Session as DeviceSession
from gatepass.text import printable

EventKind = Literal["session", "user", "client", "jti", "key"]
LEEWAY = timedelta(seconds=60)
# A cut-off is at most a second ahead of the clock that set it; more is skew between replicas.
MAX_CUT_OFF_WAIT = 1.0
CUT_OFF_ATTEMPTS = 3

T = TypeVar("T")


async def record(
    db: AsyncSession,
    settings: Settings,
    kind: EventKind,
    value: str,
    now: datetime,
    *,
    not_before: datetime | None = None,
    expires_at: datetime | None = None,
) -> None:
    """Record an event for the edges' feed in the caller's transaction, after its other writes
    (see :func:`auth_service.feed.lock_for_insert`). It lives until ``expires_at``: by default
    until every access token it can affect has expired (the longest lifetime plus the leeway)."""
    await feed.lock_for_insert(db)
    db.add(
        RevocationEvent(
            kind=kind,
            value=value,
            not_before=not_before,
            created_at=now,
            expires_at=expires_at or now + timedelta(seconds=settings.access_token_ttl) + LEEWAY,
        )
    )


def cut_off(now: datetime) -> datetime:
    """The first whole second strictly after ``now``: token times are whole seconds (RFC 7519),
    so every token issued up to now, even within this second, has an ``iat`` before it."""
    return now.replace(microsecond=0) + timedelta(seconds=1)


async def revoke_user_tokens(
    db: AsyncSession, settings: Settings, user: User, now: datetime
) -> None:
    """Revoke every token the user holds now. Recorded on the user, for the issuer, and as an
    event, for the edges. ``now`` must be read after the user row was locked
    (:func:`user_to_revoke`); tokens signed from the cut-off on stay good (:func:`after_cut_off`).
    """
    user.tokens_not_before = cut_off(now)
    await record(db, settings, "user", user.id, now, not_before=user.tokens_not_before)


async def user_to_revoke(db: AsyncSession, user_id: str) -> User | None:
    """The user row, locked against every signer (PostgreSQL; SQLite transactions are serial).
    Read the clock for the cut-off *after* this: later than every token signed from the old state.
    """
    return await db.scalar(
        select(User)
        .where(User.id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def user_to_sign_for(db: AsyncSession, user_id: str) -> User | None:
    """The user row under a shared lock, held until the token is committed: a revoker waits for
    it, so it cannot change the roles it was signed with and then set a cut-off before its iat."""
    return await db.scalar(
        select(User)
        .where(User.id == user_id)
        .with_for_update(read=True)
        .execution_options(populate_existing=True)
    )


class CutOffAhead(Exception):
    """The user's cut-off is ahead of the clock: a token signed now would be born revoked."""

    def __init__(self, seconds: float) -> None:
        super().__init__("the user's token cut-off is ahead of the clock")
        self.seconds = seconds


def check_cut_off(user: User, now: datetime) -> None:
    """Raise :class:`CutOffAhead` unless a token with ``iat`` = floor(now) outlives the cut-off.
    Call it before writing anything: the transaction is rolled back and tried again."""
    cut = user.tokens_not_before
    if cut is not None and cut > now:
        raise CutOffAhead((cut - now).total_seconds())


async def after_cut_off(attempt: Callable[[], Awaitable[T]], sleep: Sleep) -> T:
    """Run ``attempt`` (a whole transaction that signs a token); while it finds the user's cut-off
    ahead (:class:`CutOffAhead`), wait for the cut-off, outside the transaction, and run it again.
    The wait is at most a second each time; a cut-off that stays ahead is clock skew: 503."""
    for _ in range(CUT_OFF_ATTEMPTS):
        try:
            return await attempt()
        except CutOffAhead as ahead:
            wait = min(ahead.seconds, MAX_CUT_OFF_WAIT)
        await sleep(wait)
    raise RevocationPendingError()


audit_log = logging.getLogger("gatepass.auth.audit")

# The security_events columns: kind 40, user_id and session_id 40, ip 64.
AUDIT_KIND_MAX = 40
AUDIT_ID_MAX = 40
AUDIT_IP_MAX = 64
AUDIT_DETAIL_TEXT_MAX = 200


async def security_event(
    db: AsyncSession,
    kind: str,
    now: datetime,
    *,
    user_id: str | None = None,
    session_id: str | None = None,
    ip: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record an audit event in the caller's transaction, never at the cost of what it records.

    The caller's own changes (a revocation, say) are flushed first, outside the event: if they
    fail, that is the caller's error. The event is then written inside a savepoint, its fields
    cleaned and cut to their columns so that a client-supplied value (an address) cannot fail it;
    should it fail anyway, only the savepoint is rolled back, the loss is logged, and the caller
    commits its revocation regardless.
    """
    event = SecurityEvent(
        kind=kind[:AUDIT_KIND_MAX],
        user_id=printable(user_id, AUDIT_ID_MAX),
        session_id=printable(session_id, AUDIT_ID_MAX),
        ip=printable(ip, AUDIT_IP_MAX),
        detail=_clean_detail(detail or {}),
        created_at=now,
    )
    await db.flush()
    try:
        async with db.begin_nested():
            db.add(event)
    except SQLAlchemyError:
        audit_log.exception(
            "security event not recorded; what it records stands",
            extra={"kind": event.kind, "user_id": event.user_id, "session_id": event.session_id},
        )


def _clean_detail(value: Any) -> Any:
    """An audit detail with every string cleaned and bounded (JSON: dicts, lists, scalars)."""
    if isinstance(value, str):
        return printable(value, AUDIT_DETAIL_TEXT_MAX) or ""
    if isinstance(value, dict):
        return {str(printable(str(k), AUDIT_ID_MAX)): _clean_detail(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_detail(item) for item in value]
    return value


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
    client_id = claims.get("client_id")
    if isinstance(client_id, str) and await is_client_revoked(db, client_id, iat, now):
        return True  # issued to a client since disabled or removed (a token it exchanged)
    jti = claims.get("jti")
    return isinstance(jti, str) and await is_jti_revoked(db, jti, now)


async def is_client_revoked(
    db: AsyncSession, client_id: str, issued_at: datetime, now: datetime
) -> bool:
    """Whether a live ``client`` event (its client disabled or removed, see ``registry``) cuts
    off a token issued to ``client_id`` at ``issued_at``: the service's own tokens and those it
    got by token exchange for users alike (their ``client_id`` claim is the service's)."""
    found = await db.scalar(
        select(RevocationEvent.id)
        .where(
            RevocationEvent.kind == "client",
            RevocationEvent.value == client_id,
            RevocationEvent.not_before > issued_at,
            RevocationEvent.expires_at > now,
        )
        .limit(1)
    )
    return found is not None


async def is_jti_revoked(db: AsyncSession, jti: str, now: datetime) -> bool:
    """Whether this one token was revoked (RFC 7009, ``POST /revoke``) and the event is live."""
    found = await db.scalar(
        select(RevocationEvent.id)
        .where(
            RevocationEvent.kind == "jti",
            RevocationEvent.value == jti,
            RevocationEvent.expires_at > now,
        )
        .limit(1)
    )
    return found is not None


async def forget_expired(db: AsyncSession, now: datetime) -> int:
    result = await db.execute(delete(RevocationEvent).where(RevocationEvent.expires_at < now))
    return int(getattr(result, "rowcount", 0) or 0)

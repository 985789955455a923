"""Sessions (one per signed-in device) and the refresh-token lineage that keeps them alive.

A session has exactly one live refresh token at any time. Using it rotates it: the token is marked
rotated, names its successor, and the successor is the session's one live token. A rotated token
presented again within the grace window is an honest retry (a lost response, two tabs) only while
its successor is unused: it gets a fresh pair and the successor dies unused (superseded), so there
is still one live token. Any other dead token presented (rotated before the window, superseded, or
retried after its successor was used) can only be a copy: the whole session is revoked (theft
detection, RFC 9700 §4.14.2) and a security event is recorded.

Each step of a lineage runs under its session's row lock, after a shared lock on its user (see
:mod:`auth_service.revocation`), so steps are taken one at a time on SQLite and PostgreSQL alike;
the conditional UPDATEs that retire a live token let exactly one of two racing steps win even so.
A session keeps only its newest ``refresh_history`` dead tokens (storage stays bounded), yet an
older one is still recognised: every token carries its session and its place in the lineage under
an HMAC tag (:mod:`auth_service.tokens`), so a token with a good tag, no row, and a place below the
session's live token is a dead token of that session, and revokes it like any other. A token with a
bad tag names nothing and revokes nothing. A legacy token (issued before tags, known by its hash
only) whose row is pruned is simply unknown (``invalid_grant``, nothing revoked).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth_service import grants, registry, revocation
from auth_service.clock import Clock
from auth_service.config import Settings
from auth_service.errors import (
    AccountDisabledError,
    InvalidCredentialsError,
    NotFoundError,
    OAuthError,
)
from auth_service.keys import SigningMaterial
from auth_service.metrics import Metrics
from auth_service.models import RefreshToken, User
from auth_service.models import Session as DeviceSession
from auth_service.state import Services
from auth_service.tokens import (
    IDENTITY_SCOPES,
    AccessGrant,
    InvalidRefreshToken,
    RefreshTokenPlace,
    hash_refresh_token,
    new_id,
    new_refresh_token,
    refresh_token_place,
    scopes_for,
    sign_access_token,
)
from gatepass.core.errors import TokenError

log = logging.getLogger("gatepass.auth.sessions")


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str
    session_id: str
    scope: str


@dataclass(frozen=True)
class _Narrowed:
    """What a refresh asks its access token to narrow to: ``scope`` (None: the session's whole
    grant) and ``resource`` (empty: every audience of the session)."""

    scope: frozenset[str] | None
    resource: Collection[str]


@dataclass(frozen=True)
class _Found:
    """A presented refresh token with its session (locked) and its user (share-locked).

    ``row`` is None for a token whose tag vouches for a place (``seq``) below the session's live
    token but whose row was pruned: a dead token of this session."""

    row: RefreshToken | None
    session: DeviceSession
    user: User
    seq: int


_NOT_VALID = "The refresh token is not valid."


def _grant_error(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description)


# --- login -------------------------------------------------------------------------------------


async def open_session(
    svc: Services,
    user: User,
    *,
    client_id: str,
    user_agent: str | None,
    ip: str | None,
    audiences: Sequence[str] | None = None,
    scopes: Sequence[str] | None = None,
) -> TokenPair:
    """A login: a new device session, its first refresh token and an access token.

    ``audiences`` (checked by the caller, :func:`auth_service.grants.audiences_for`) are what
    the session's access tokens name, stored with it; None: the settings' ``app_audiences``.
    ``scopes`` (a sign-in through an app: what it asked for) are kept with the session and its
    tokens carry them, within the user's roles at every refresh; None: the roles' whole grant.

    The user is read again under the signing lock: a role change, a disable or a password change
    since the password was checked counts (a login that checked the old password while it was
    being changed must not open a session the change did not sign out)."""
    key = await svc.keys.signing_key()
    checked = user.password_hash

    async def attempt() -> TokenPair:
        return await _open(
            svc,
            key,
            user.id,
            checked,
            client_id=client_id,
            user_agent=user_agent,
            ip=ip,
            audiences=list(
                audiences if audiences is not None else svc.settings.default_app_audiences
            ),
            scopes=None if scopes is None else sorted(set(scopes)),
        )

    pair = await revocation.after_cut_off(attempt, svc.sleep)
    svc.metrics.tokens_issued.labels("password").inc()
    return pair


async def _open(
    svc: Services,
    key: SigningMaterial,
    user_id: str,
    checked_hash: str,
    *,
    client_id: str,
    user_agent: str | None,
    ip: str | None,
    audiences: list[str],
    scopes: list[str] | None,
) -> TokenPair:
    now = svc.clock()
    async with svc.sessions() as db:
        user = await revocation.user_to_sign_for(db, user_id)
        if user is None or user.disabled:
            raise AccountDisabledError("This account is disabled.")
        if user.password_hash != checked_hash:
            raise InvalidCredentialsError("The email or the password is wrong.")
        revocation.check_cut_off(user, now)
        session = DeviceSession(
            id=new_id("ses"),
            user_id=user.id,
            client_id=client_id,
            user_agent=(user_agent or "")[:512] or None,
            ip=ip,
            created_at=now,
            last_used_at=now,
            expires_at=now + timedelta(seconds=svc.settings.session_absolute_lifetime),
            audiences=audiences,
            scope=scopes,
        )
        db.add(session)
        await db.flush()
        first, refresh_token = _new_link(svc.refresh_key, session.id, 0, now)
        db.add(first)
        pair = _pair(
            svc.settings,
            key,
            user,
            session,
            refresh_token=refresh_token,
            scopes=_granted(user, svc.settings, session),
            audiences=audiences,
            now=now,
        )
        await db.commit()
    return pair


def _new_link(
    refresh_key: bytes, session_id: str, seq: int, now: datetime
) -> tuple[RefreshToken, str]:
    """A new live refresh token (row, and the token itself, which is never stored)."""
    token = new_refresh_token(refresh_key, session_id, seq)
    row = RefreshToken(
        id=new_id("rt"),
        session_id=session_id,
        token_hash=hash_refresh_token(token),
        seq=seq,
        created_at=now,
    )
    return row, token


def _granted(user: User, settings: Settings, session: DeviceSession) -> list[str]:
    """What the session's tokens may carry: the user's roles' scopes now, narrowed to what the
    sign-in asked for when it asked (OpenID Connect's own scopes kept: no role grants them)."""
    roles = scopes_for(user.roles, settings)
    if session.scope is None:
        return roles
    return sorted(s for s in session.scope if s in roles or s in IDENTITY_SCOPES)


def _pair(
    settings: Settings,
    key: SigningMaterial,
    user: User,
    session: DeviceSession,
    *,
    refresh_token: str,
    scopes: list[str],
    audiences: list[str],
    now: datetime,
) -> TokenPair:
    grant = AccessGrant(user.id, session.id, session.client_id, scopes, audiences)
    access = sign_access_token(key, settings, grant, now)
    ttl = settings.access_token_ttl
    return TokenPair(access, ttl, refresh_token, session.id, " ".join(scopes))


# --- the refresh grant -------------------------------------------------------------------------


async def refresh(
    svc: Services,
    token: str,
    *,
    client_id: str | None,
    ip: str | None,
    scope: frozenset[str] | None = None,
    resource: Collection[str] = (),
) -> TokenPair:
    """The refresh_token grant (RFC 6749 §6): one step of the session's lineage.

    ``scope`` narrows the access token (``invalid_scope`` if it asks for anything the session's
    grant lacks), and so does ``resource`` (RFC 8707: ``invalid_target`` for an audience the
    session lacks); the new refresh token keeps the whole grant."""
    try:
        place = refresh_token_place(svc.refresh_key, token)  # before anything: a forgery stops here
    except InvalidRefreshToken:
        raise _grant_error(_NOT_VALID) from None
    key = await svc.keys.signing_key()
    token_hash = hash_refresh_token(token)

    async def attempt() -> TokenPair:
        return await _refresh(
            svc,
            key,
            token_hash,
            place,
            client_id=client_id,
            ip=ip,
            narrowed=_Narrowed(scope, resource),
        )

    pair = await revocation.after_cut_off(attempt, svc.sleep)
    svc.metrics.tokens_issued.labels("refresh_token").inc()
    return pair


async def _refresh(
    svc: Services,
    key: SigningMaterial,
    token_hash: str,
    place: RefreshTokenPlace | None,
    *,
    client_id: str | None,
    ip: str | None,
    narrowed: _Narrowed,
) -> TokenPair:
    now = svc.clock()
    async with svc.sessions() as db:
        found = await _find_locked(db, token_hash, place)
        if found is None:
            raise _grant_error(_NOT_VALID)
        strict = await must_authenticate(db, svc.settings, found.session.client_id)
        refusal = _refusal(svc.settings, found, client_id, now, strict=strict)
        if refusal is not None:
            raise _grant_error(refusal)
        row = found.row
        if row is not None:  # None: a pruned dead token, which can only be a copy
            retired = await _to_retire(db, row, now, svc.settings.refresh_reuse_grace)
            if retired is not None:
                pair = await _rotate(
                    svc, db, key, found, row, retired=retired, narrowed=narrowed, now=now
                )
                if pair is not None:
                    await db.commit()
                    return pair
        await _revoke_for_reuse(svc.settings, svc.metrics, db, found, ip=ip, now=now)
        await db.commit()
    raise _grant_error("The refresh token was already used; the session is revoked.")


async def _find_locked(
    db: AsyncSession, token_hash: str, place: RefreshTokenPlace | None
) -> _Found | None:
    """The presented token's user (shared lock), then its session (locked: one step of a lineage
    at a time), then the token itself, read after the locks so that it is current.

    The session is the token row's, or, without a row, the one the token's verified tag names."""
    session_id = await db.scalar(
        select(RefreshToken.session_id).where(RefreshToken.token_hash == token_hash)
    )
    if session_id is None and place is not None:
        session_id = place.session_id
    if session_id is None:
        return None
    user_id = await db.scalar(select(DeviceSession.user_id).where(DeviceSession.id == session_id))
    if user_id is None:
        return None
    user = await revocation.user_to_sign_for(db, user_id)
    session = await db.scalar(
        select(DeviceSession)
        .where(DeviceSession.id == session_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    row = await db.scalar(
        select(RefreshToken)
        .where(RefreshToken.token_hash == token_hash)
        .execution_options(populate_existing=True)
    )
    if user is None or session is None:
        return None
    if row is not None:
        return _Found(row, session, user, row.seq)
    if place is None or place.session_id != session.id:
        return None  # a legacy token whose row is gone: unknown
    live_seq = await db.scalar(
        select(RefreshToken.seq).where(
            RefreshToken.session_id == session.id,
            RefreshToken.rotated_at.is_(None),
            RefreshToken.superseded_at.is_(None),
        )
    )
    if live_seq is None or place.seq >= live_seq:
        return None  # not behind the live token: never issued as a dead link of this lineage
    return _Found(None, session, user, place.seq)


def _refusal(
    settings: Settings, found: _Found, client_id: str | None, now: datetime, *, strict: bool
) -> str | None:
    """Why this token cannot be used, whatever its place in the lineage; None if it can.
    ``strict``: the session's client must authenticate (:func:`must_authenticate`)."""
    session = found.session
    if not issued_to(session.client_id, client_id, must_authenticate=strict):
        return "The refresh token was issued to another client."
    if session.revoked_at is not None:
        return "The session has been signed out."
    if session.expires_at <= now:
        return "The session has reached its maximum lifetime."
    if now - session.last_used_at > timedelta(seconds=settings.session_idle_timeout):
        return "The session has been idle for too long."
    if found.user.disabled:
        return "The account is disabled."
    return None


def issued_to(token_client: str | None, caller: str | None, *, must_authenticate: bool) -> bool:
    """Whether a token issued to ``token_client`` is the caller's to use or revoke. ``caller``
    names a confidential client only once it has authenticated (clients.py); a caller that names
    no client may use a public client's tokens, never those of a client that must authenticate
    (:func:`must_authenticate`)."""
    if caller == token_client:
        return True
    return caller is None and not must_authenticate


async def must_authenticate(db: AsyncSession, settings: Settings, client_id: str | None) -> bool:
    """Whether only ``client_id`` itself, authenticated, may use or revoke its tokens: a client
    with a secret in the settings, or a registered confidential one. A disabled registered
    client counts too: nobody may use its tokens any more (it cannot authenticate)."""
    if client_id is None:
        return False
    if client_id in settings.confidential_clients:
        return True
    client = await registry.find(db, client_id)
    return client is not None and (client.confidential or client.disabled)


def _is_live(row: RefreshToken) -> bool:
    return row.rotated_at is None and row.superseded_at is None


async def _to_retire(
    db: AsyncSession, row: RefreshToken, now: datetime, grace: float
) -> RefreshToken | None:
    """The live token this use retires: the presented one, or, for an honest retry inside the
    grace window, its successor while still unused. None: the presented token is dead (a copy)."""
    if _is_live(row):
        return row
    if row.rotated_at is None or row.replaced_by is None:
        return None  # superseded: killed unused by a retry of its parent
    if now - row.rotated_at > timedelta(seconds=grace):
        return None
    successor = await db.get(RefreshToken, row.replaced_by)
    return successor if successor is not None and _is_live(successor) else None


async def _rotate(
    svc: Services,
    db: AsyncSession,
    key: SigningMaterial,
    found: _Found,
    row: RefreshToken,
    *,
    retired: RefreshToken,
    narrowed: _Narrowed,
    now: datetime,
) -> TokenPair | None:
    """Retire ``retired`` (``row``, the presented token, or its unused successor), issue its
    successor and sign; None if another step won the race."""
    scopes = _access_scopes(found.user, svc.settings, found.session, narrowed.scope)
    audiences = grants.audiences_for(
        svc.settings,
        narrowed.resource,
        grants.session_audiences(svc.settings, found.session.audiences),
    )
    revocation.check_cut_off(found.user, now)  # before any write: the attempt is tried again
    new, refresh_token = _new_link(svc.refresh_key, found.session.id, retired.seq + 1, now)
    if not await _retire(db, row, retired, new.id, now):
        return None
    db.add(new)  # after the retirement: the session never holds two live tokens
    await _prune(db, found.session.id, new.seq, svc.settings.refresh_history)
    found.session.last_used_at = now
    return _pair(
        svc.settings,
        key,
        found.user,
        found.session,
        refresh_token=refresh_token,
        scopes=scopes,
        audiences=audiences,
        now=now,
    )


def _access_scopes(
    user: User, settings: Settings, session: DeviceSession, requested: frozenset[str] | None
) -> list[str]:
    """The access token's scopes: the session's whole grant, or the narrower set requested."""
    granted = _granted(user, settings, session)
    if requested is None:
        return granted
    if not requested <= set(granted):
        raise OAuthError("invalid_scope", "The requested scope exceeds the scope granted.")
    return sorted(requested)


async def _retire(
    db: AsyncSession, row: RefreshToken, retired: RefreshToken, new_id: str, now: datetime
) -> bool:
    """Retire the live token: rotated if it is the one presented, superseded if it is the unused
    successor of a retried one. False if it was no longer live (lost a race)."""
    if retired is row:
        return await _retire_live(db, row.id, rotated_at=now, replaced_by=new_id)
    if not await _retire_live(db, retired.id, superseded_at=now):
        return False
    await db.execute(
        update(RefreshToken)
        .where(RefreshToken.id == row.id)
        .values(replaced_by=new_id)
        .execution_options(synchronize_session=False)
    )
    return True


async def _retire_live(db: AsyncSession, token_id: str, **values: Any) -> bool:
    """A conditional UPDATE of a live token: of two racing callers, exactly one wins."""
    result = await db.execute(
        update(RefreshToken)
        .where(
            RefreshToken.id == token_id,
            RefreshToken.rotated_at.is_(None),
            RefreshToken.superseded_at.is_(None),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


async def _prune(db: AsyncSession, session_id: str, newest: int, history: int) -> None:
    """Keep the session's ``history`` newest dead tokens, delete the rest: a deleted one is still
    recognised by its tag (a legacy one no longer is)."""
    await db.execute(
        delete(RefreshToken)
        .where(
            RefreshToken.session_id == session_id,
            RefreshToken.seq < newest - history,
            or_(RefreshToken.rotated_at.is_not(None), RefreshToken.superseded_at.is_not(None)),
        )
        .execution_options(synchronize_session=False)
    )


async def _revoke_for_reuse(
    settings: Settings,
    metrics: Metrics,
    db: AsyncSession,
    found: _Found,
    *,
    ip: str | None,
    now: datetime,
) -> None:
    session = found.session
    session.revoked_at = now
    session.revoked_reason = "refresh_reuse"
    await revocation.record(db, settings, "session", session.id, now)
    await revocation.security_event(
        db,
        "refresh_token_reuse",
        now,
        user_id=session.user_id,
        session_id=session.id,
        ip=ip,
        detail=(
            {"refresh_token_id": found.row.id}
            if found.row is not None
            else {"refresh_token_seq": found.seq, "pruned": True}
        ),
    )
    metrics.refresh_reuse.inc()
    log.warning(
        "refresh token reused after rotation; session revoked",
        extra={"user_id": session.user_id, "session_id": session.id, "client": ip},
    )


# --- the caller's devices ----------------------------------------------------------------------


async def list_sessions(
    sessions: async_sessionmaker[AsyncSession], clock: Clock, user_id: str
) -> list[DeviceSession]:
    now = clock()
    async with sessions() as db:
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
        await _sign_out(db, svc.settings, session, reason, now)


async def _sign_out(
    db: AsyncSession, settings: Settings, session: DeviceSession, reason: str, now: datetime
) -> None:
    """Revoke a session (its refresh token dies with it) and tell the edges; committed. Nothing
    happens to a session already revoked."""
    if session.revoked_at is None:
        session.revoked_at = now
        session.revoked_reason = reason
        await revocation.record(db, settings, "session", session.id, now)
        await db.commit()


async def revoke_all(svc: Services, user_id: str, reason: str) -> int:
    async with svc.sessions() as db:
        user = await revocation.user_to_revoke(db, user_id)
        now = svc.clock()  # after the lock: see revocation.user_to_revoke
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
        if user is not None:
            await revocation.revoke_user_tokens(db, svc.settings, user, now)
        await db.commit()
    return len(sessions)


# --- RFC 7009 token revocation -----------------------------------------------------------------


async def revoke_token(
    svc: Services, token: str, hint: str | None, *, client_id: str | None
) -> None:
    """``POST /revoke``: a refresh token signs its session out (its access tokens with it), an
    access token is revoked alone (a ``jti`` event until it expires). The hint decides which kind
    is looked up first; the other is looked up too (RFC 7009 §2.1). A token that is neither (a
    bad one, an expired one, one already revoked) leaves everything as it was: the endpoint
    answers 200 all the same (§2.2). A token issued to another client is refused."""
    attempts = (
        (_revoke_access_token, _revoke_refresh_token)
        if hint == "access_token"
        else (_revoke_refresh_token, _revoke_access_token)
    )
    for attempt in attempts:
        if await attempt(svc, token, client_id):
            return


def _not_the_callers() -> OAuthError:
    return OAuthError("unauthorized_client", "The token was issued to another client.")


async def _revoke_refresh_token(svc: Services, token: str, client_id: str | None) -> bool:
    """Sign out the session of a refresh token this service issued; False if it is not one. Its
    tag names the session even once its row is pruned; a legacy token is found by its hash."""
    try:
        place = refresh_token_place(svc.refresh_key, token)
    except InvalidRefreshToken:
        return False
    now = svc.clock()
    async with svc.sessions() as db:
        session_id = place.session_id if place is not None else await _legacy_session(db, token)
        session = None if session_id is None else await db.get(DeviceSession, session_id)
        if session is None:
            return False
        strict = await must_authenticate(db, svc.settings, session.client_id)
        if not issued_to(session.client_id, client_id, must_authenticate=strict):
            raise _not_the_callers()
        await _sign_out(db, svc.settings, session, "revoked_by_client", now)
    return True


async def _legacy_session(db: AsyncSession, token: str) -> str | None:
    """The session of a refresh token from before tags, by its stored hash (if still stored)."""
    return await db.scalar(
        select(RefreshToken.session_id).where(RefreshToken.token_hash == hash_refresh_token(token))
    )


async def _revoke_access_token(svc: Services, token: str, client_id: str | None) -> bool:
    """Revoke an access token this service signed and that is still valid, whatever its
    audience; False otherwise. The event lives until the token's own ``exp`` plus the leeway,
    once per token."""
    try:
        principal = await grants.verify_issued(svc, token)
    except TokenError:
        return False
    claims = principal.claims
    token_client = principal.client_id
    now = svc.clock()
    async with svc.sessions() as db:
        strict = await must_authenticate(db, svc.settings, token_client)
        if not issued_to(token_client, client_id, must_authenticate=strict):
            raise _not_the_callers()
        jti, exp = claims.get("jti"), claims.get("exp")
        if not isinstance(jti, str) or not isinstance(exp, int):
            return True  # not ours to revoke one by one (every token this service signs has both)
        if not await revocation.is_jti_revoked(db, jti, now):
            expires_at = datetime.fromtimestamp(exp, UTC) + revocation.LEEWAY
            await revocation.record(db, svc.settings, "jti", jti, now, expires_at=expires_at)
            await db.commit()
    return True

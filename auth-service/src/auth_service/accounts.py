"""Accounts: signup, password login, password change, and the admin operations on users."""

from __future__ import annotations

import logging
import unicodedata
from contextlib import AsyncExitStack
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth_service import passwords, revocation
from auth_service.clock import Clock
from auth_service.errors import (
    AccountDisabledError,
    EmailTakenError,
    InvalidCredentialsError,
    InvalidEmailError,
    InvalidRoleError,
    NotFoundError,
    OverloadedError,
    TooManyAttemptsError,
    TooManySignupsError,
    WrongPasswordError,
)
from auth_service.metrics import Metrics
from auth_service.models import Session as DeviceSession
from auth_service.models import User
from auth_service.passwords import Hashing, PasswordService
from auth_service.state import Services
from auth_service.throttle import LoginThrottler, Reservation, Throttled
from auth_service.tokens import new_id

log = logging.getLogger("gatepass.auth.accounts")


def normalise_email(raw: str) -> str:
    """Canonical form for uniqueness: normalised by email-validator (IDNA, NFC), lowercased."""
    try:
        checked = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmailError(str(exc)) from exc
    return checked.normalized.lower()


def _check_plain(address: str) -> None:
    """A new account's address must be what Unicode compatibility normalisation (NFKC) leaves
    it: a full-width or superscript copy of an address lists and reads like the original, and
    would be an account of its own. Existing accounts are not touched."""
    if unicodedata.normalize("NFKC", address) != address:
        raise InvalidEmailError(
            "The address is written in compatibility characters (full-width letters, "
            "superscripts, ligatures...): write it in its plain form."
        )


def login_key(raw: str) -> str:
    """The lookup form of an email at login: never an error, so bad input looks like a miss."""
    try:
        return normalise_email(raw)
    except InvalidEmailError:
        return raw.strip().lower()


async def signup(
    svc: Services,
    email: str,
    password: str,
    display_name: str | None = None,
    *,
    roles: list[str] | None = None,
    ip: str | None = None,
) -> User:
    """Create an account. With ``ip`` (a request, not the operator's command) each attempt that
    passes the policy counts against the address's signup allowance."""
    address = normalise_email(email)
    _check_plain(address)
    passwords.check_policy(password, svc.settings, email=address)
    async with AsyncExitStack() as stack:
        reservation = None if ip is None else await _reserve_signup(svc.throttle, svc.metrics, ip)
        hashing = await _hashing_place(svc.passwords, svc.throttle, stack, reservation)
        password_hash = await hashing.hash(password)
    now = svc.clock()
    user = User(
        id=new_id("usr"),
        email=address,
        display_name=display_name,
        password_hash=password_hash,
        roles=list(roles if roles is not None else svc.settings.default_roles),
        disabled=False,
        created_at=now,
        updated_at=now,
    )
    async with svc.sessions() as db:
        db.add(user)
        try:
            await db.commit()
        except IntegrityError as exc:
            svc.metrics.signups.labels("conflict").inc()
            raise EmailTakenError("An account with this email already exists.") from exc
    svc.metrics.signups.labels("created").inc()
    log.info("user signed up", extra={"user_id": user.id})
    return user


async def _hashing_place(
    hasher: PasswordService,
    throttle: LoginThrottler,
    stack: AsyncExitStack,
    reservation: Reservation | None,
) -> Hashing:
    """A place in the hashing queue, held until ``stack`` closes, for an attempt the throttle has
    already let through. When the queue is full the attempt was never checked: its reservation
    is released before the 503, so an overload counts as no attempt at all."""
    try:
        return await stack.enter_async_context(hasher.admission())
    except OverloadedError:
        if reservation is not None:
            await throttle.release(reservation)
        raise


async def _reserve_signup(throttle: LoginThrottler, metrics: Metrics, ip: str) -> Reservation:
    try:
        return await throttle.reserve_signup(ip)
    except Throttled as exc:
        metrics.signups.labels("throttled").inc()
        raise TooManySignupsError(exc.retry_after) from exc


async def _reserve_login(
    throttle: LoginThrottler, metrics: Metrics, key: str, ip: str
) -> Reservation:
    try:
        return await throttle.reserve_login(key, ip)
    except Throttled as exc:
        metrics.logins.labels("throttled").inc()
        raise TooManyAttemptsError(exc.retry_after) from exc


async def authenticate(svc: Services, email: str, password: str, ip: str) -> User:
    """Check a password. Unknown email and wrong password fail alike: the same hash work, the
    same counters written, the same answer.

    The order matters: the attempt is counted as a failure first (so concurrent guesses cannot
    outrun the throttle, and a refused one never holds a place in the hashing queue: a flood
    from a blocked address cannot crowd out anyone else), then a place in the queue is taken
    (a full queue releases the count: a 503 is no failed password), and a correct password
    settles the count afterwards.
    """
    key = login_key(email)
    reservation = await _reserve_login(svc.throttle, svc.metrics, key, ip)
    async with AsyncExitStack() as stack:
        hashing = await _hashing_place(svc.passwords, svc.throttle, stack, reservation)
        async with svc.sessions() as db:
            user = await db.scalar(select(User).where(User.email == key))
        ok = await hashing.verify(user.password_hash if user else None, password)
        if not ok or user is None:
            svc.metrics.logins.labels("invalid_credentials").inc()
            raise InvalidCredentialsError("The email or the password is wrong.")
        await svc.throttle.login_succeeded(reservation)
        if user.disabled:
            svc.metrics.logins.labels("disabled").inc()
            raise AccountDisabledError("This account is disabled.")
        if svc.passwords.needs_rehash(user.password_hash):
            rehashed = await _rehash(svc.sessions, svc.clock, hashing, user, password)
            if rehashed is None:  # the password changed while this one was checked
                svc.metrics.logins.labels("invalid_credentials").inc()
                raise InvalidCredentialsError("The email or the password is wrong.")
            user.password_hash = rehashed  # what the session is opened against
    svc.metrics.logins.labels("success").inc()
    return user


async def _rehash(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    hashing: Hashing,
    user: User,
    password: str,
) -> str | None:
    """The hashing parameters changed since this hash was made: store a fresh one, unless the
    password itself changed meanwhile (then ``None``: never put the old password back)."""
    new_hash = await hashing.hash(password)
    async with sessions() as db:
        stored = await db.execute(
            update(User)
            .where(User.id == user.id, User.password_hash == user.password_hash)
            .values(password_hash=new_hash, updated_at=clock())
        )
        await db.commit()
    return new_hash if getattr(stored, "rowcount", 0) == 1 else None


async def change_password(
    svc: Services,
    user_id: str,
    current: str,
    new: str,
    *,
    keep_session: str | None,
    ip: str,
) -> None:
    """The caller's own password change: the current password checked as at a login (the same
    throttle, so a stolen access token guesses no faster than a login would), the new one under
    the signup policy.

    Every other session of the user is signed out, and every access token issued before now,
    the caller's own included, is revoked (a ``user`` event, as at logout everywhere); the
    session ``keep_session`` stays signed in, and its client refreshes (``POST /token``) for an
    access token issued after the change. The new hash is stored only if the one that was checked
    is still the stored one (a concurrent change, or a login's re-hash, makes this one fail as a
    wrong password: the caller tries again)."""
    async with svc.sessions() as db:
        user = await db.get(User, user_id)
    if user is None or user.disabled:
        raise AccountDisabledError("This account is disabled.")
    passwords.check_policy(new, svc.settings, email=user.email)
    try:
        reservation = await svc.throttle.reserve_login(user.email, ip)
    except Throttled as exc:
        raise TooManyAttemptsError(exc.retry_after) from exc
    async with AsyncExitStack() as stack:
        hashing = await _hashing_place(svc.passwords, svc.throttle, stack, reservation)
        if not await hashing.verify(user.password_hash, current):
            raise WrongPasswordError("The current password is wrong.")
        await svc.throttle.login_succeeded(reservation)
        new_hash = await hashing.hash(new)
    await _store_password(svc, user, new_hash, keep_session=keep_session, ip=ip)
    log.info("password changed", extra={"user_id": user.id})


async def _store_password(
    svc: Services, checked: User, new_hash: str, *, keep_session: str | None, ip: str
) -> None:
    async with svc.sessions() as db:
        user = await revocation.user_to_revoke(db, checked.id)
        if user is None or user.disabled:
            raise AccountDisabledError("This account is disabled.")
        if user.password_hash != checked.password_hash:
            raise WrongPasswordError("The password changed meanwhile; try again.")
        now = svc.clock()  # after the lock: see revocation.user_to_revoke
        user.password_hash = new_hash
        user.updated_at = now
        others = select(DeviceSession).where(
            DeviceSession.user_id == user.id, DeviceSession.revoked_at.is_(None)
        )
        if keep_session is not None:
            others = others.where(DeviceSession.id != keep_session)
        signed_out = 0
        for session in await db.scalars(others):
            session.revoked_at = now
            session.revoked_reason = "password_changed"
            signed_out += 1
        await revocation.revoke_user_tokens(db, svc.settings, user, now)
        await revocation.security_event(
            db,
            "password_changed",
            now,
            user_id=user.id,
            session_id=keep_session,
            ip=ip,
            detail={"sessions_signed_out": signed_out},
        )
        await db.commit()


async def get_user(sessions: async_sessionmaker[AsyncSession], user_id: str) -> User:
    async with sessions() as db:
        user = await db.get(User, user_id)
    if user is None:
        raise NotFoundError("No such user.")
    return user


@dataclass(frozen=True)
class UserPage:
    users: list[User]
    total: int


async def list_users(svc: Services, *, limit: int = 50, offset: int = 0) -> UserPage:
    async with svc.sessions() as db:
        total = await db.scalar(select(func.count()).select_from(User)) or 0
        rows = await db.scalars(
            select(User).order_by(User.created_at, User.id).limit(limit).offset(offset)
        )
        return UserPage(list(rows), int(total))


async def find_user_by_email(svc: Services, email: str) -> User | None:
    async with svc.sessions() as db:
        return await db.scalar(select(User).where(User.email == normalise_email(email)))


async def set_roles(svc: Services, user_id: str, roles: list[str]) -> User:
    """New roles take effect at the user's next refresh; every token issued before now, even
    within this second, is revoked (see :mod:`auth_service.revocation`)."""
    unknown = sorted(set(roles) - set(svc.settings.role_scopes))
    if unknown:
        raise InvalidRoleError(f"Unknown roles: {', '.join(unknown)}.")
    async with svc.sessions() as db:
        user = await revocation.user_to_revoke(db, user_id)
        if user is None:
            raise NotFoundError("No such user.")
        now = svc.clock()  # after the lock: later than every token signed with the old roles
        user.roles = sorted(set(roles))
        user.updated_at = now
        await revocation.revoke_user_tokens(db, svc.settings, user, now)
        await revocation.security_event(
            db, "roles_changed", now, user_id=user.id, detail={"roles": user.roles}
        )
        await db.commit()
    return user


async def set_disabled(svc: Services, user_id: str, disabled: bool) -> User:
    """Disabling a user revokes every one of their sessions at once."""
    async with svc.sessions() as db:
        user = await revocation.user_to_revoke(db, user_id)
        if user is None:
            raise NotFoundError("No such user.")
        now = svc.clock()  # after the lock: see revocation.user_to_revoke
        user.disabled = disabled
        user.updated_at = now
        if disabled:
            sessions = await db.scalars(
                select(DeviceSession).where(
                    DeviceSession.user_id == user.id, DeviceSession.revoked_at.is_(None)
                )
            )
            for session in sessions:
                session.revoked_at = now
                session.revoked_reason = "user_disabled"
            await revocation.revoke_user_tokens(db, svc.settings, user, now)
        await revocation.security_event(
            db, "user_disabled" if disabled else "user_enabled", now, user_id=user.id
        )
        await db.commit()
    return user

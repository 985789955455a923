"""The key manager: runs the signing keys' life cycle against the database and serves readers.

Life cycle (the rules are :mod:`auth_service.keys.rotation`): the scheduled job (:meth:`maintain`)
publishes a ``next`` key in time, promotes it to ``active`` when due, ``retires`` the key it
replaces and removes what has expired; the operator may :meth:`rotate` early or :meth:`revoke` a
key at once. Each purpose (``access`` tokens, OpenID Connect ``id`` tokens) has its own keys and
runs this life cycle on them alone, with its own algorithm (``signing_alg``,
``id_token_signing_alg``): an ID-token key never signs an access token, and changing one
algorithm goes through the usual publish-then-sign lead without touching the other purpose.

Every change happens in one transaction that first takes the key-rotation lock
(:mod:`auth_service.keys.lock`); the key rows are read again under the lock and the decision is
made from them, so with any number of replicas exactly one rotates.

Readers (token signing, our own verification, the JWKS route) use an in-memory snapshot
(:mod:`auth_service.keys.published`) reloaded at most every few seconds, so signing a token costs
no database round trip.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import Final, TypeAlias

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth_service import revocation
from auth_service.clock import Clock, Sleep, run_every
from auth_service.config import ConfigError, Settings
from auth_service.keys import published, rotation
from auth_service.keys.kek import KEK_BYTES
from auth_service.keys.lock import take_rotation_lock
from auth_service.keys.published import JwksDocument, SigningMaterial, Snapshot
from auth_service.keys.rotation import (
    ACCESS,
    ACTIVE,
    PUBLISHED_STATES,
    PURPOSES,
    REVOKED,
    NewKeyPlan,
    Schedule,
    of_purpose,
    purpose_of,
)
from auth_service.keys.sealing import NewKey, PrivateKey, PublicKey, new_key, unseal_all
from auth_service.metrics import Metrics
from auth_service.models import SecurityEvent, SigningKey

logger = logging.getLogger("gatepass.auth.keys")

# Readers reload their snapshot at least this often (or every key_check_interval if shorter).
SNAPSHOT_MAX_AGE: Final = 5.0
_TRANSIENT_ERRORS = (SQLAlchemyError, OSError)


class KeyManagerError(Exception):
    """Base of the errors the key manager raises on purpose."""


class KeyNotFoundError(KeyManagerError):
    """No signing key has the given kid (never existed, or already removed)."""


class UnknownPurposeError(KeyManagerError, ValueError):
    """A purpose other than ``access`` and ``id``."""


class NoActiveKeyError(KeyManagerError):
    """There is no key to sign with (the manager was not started, or every key was removed)."""


@dataclass(frozen=True)
class KeyInfo:
    """One key as the operator CLI shows it (never the private part)."""

    kid: str
    alg: str
    state: str
    purpose: str
    created_at: datetime
    promote_after: datetime | None
    activated_at: datetime | None
    retired_at: datetime | None
    revoked_at: datetime | None = None

    @classmethod
    def of(cls, row: SigningKey) -> KeyInfo:
        return cls(
            kid=row.kid,
            alg=row.alg,
            state=row.state,
            purpose=purpose_of(row),
            created_at=row.created_at,
            promote_after=row.promote_after,
            activated_at=row.activated_at,
            retired_at=row.retired_at,
            revoked_at=row.revoked_at,
        )


@dataclass
class _Outcome:
    """What one locked job did: the kid it chose, log lines, promotions to count once committed."""

    kid: str | None = None
    actions: list[str] = field(default_factory=list)
    promotions: int = 0


# A locked job gets the rows of one purpose, read under the lock, the time, and that purpose.
_Job: TypeAlias = Callable[[AsyncSession, list[SigningKey], datetime, str], Awaitable[_Outcome]]


class KeyManager:
    """Owns the signing keys: creates, promotes, retires, revokes and publishes them."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        kek: bytes,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        if len(kek) != KEK_BYTES:
            raise ConfigError(f"the key-encryption key must be {KEK_BYTES} bytes")
        self._settings = settings
        self._sessions = sessions
        self._kek = kek
        self._clock = clock
        self._metrics = metrics
        self._schedules = {
            purpose: Schedule.from_settings(settings, purpose) for purpose in PURPOSES
        }
        self._snapshot_max_age = min(SNAPSHOT_MAX_AGE, settings.key_check_interval)
        self._holder = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"
        self._snapshot: Snapshot | None = None
        self._private: dict[str, PrivateKey] = {}
        self._reload_lock = asyncio.Lock()

    # -- life cycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """First boot makes a key of each purpose active at once (nobody can have cached a JWKS
        yet); every boot then catches up on the schedule and loads the snapshot, which also
        checks the KEK.
        """
        await self.maintain()
        await self._refresh(force=True)

    async def maintain(self) -> list[str]:
        """The scheduled job, for each purpose: remove expired keys, promote a due key, publish a
        successor.

        The rows are first read without the lock, so the common case (nothing to do) writes
        nothing, and so a new key (slow for RSA) is generated before the lock is taken.
        """
        rows, now = await self._read_rows(), self._clock()
        actions: list[str] = []
        for purpose in PURPOSES:
            plan = rotation.plan(of_purpose(rows, purpose), now, self._schedules[purpose])
            if plan.is_empty():
                continue
            spare = await self._generate(plan.create.alg) if plan.create else None
            outcome = await self._locked(purpose, partial(self._apply_plan, spare=spare))
            actions += outcome.actions
        if not actions:
            await self._current()  # keeps the snapshot and the key-age gauge fresh
        return actions

    async def rotate(self, *, immediately: bool = False, purpose: str = ACCESS) -> str:
        """Forced rotation of one purpose's key. By default the next key signs one publish lead
        after it was published (the scheduled job promotes it then). With ``immediately`` a new,
        unpublished key signs at once: edges that do not hold it yet fetch the JWKS on the
        unknown kid.
        """
        schedule = self._schedule_of(purpose)
        rows = of_purpose(await self._read_rows(), purpose)
        needs_key = immediately or not rotation.nexts(rows)
        spare = await self._generate(schedule.alg) if needs_key else None
        job = self._rotate_now if immediately else self._schedule_rotation
        outcome = await self._locked(purpose, partial(job, spare=spare))
        if outcome.kid is None:  # pragma: no cover - both jobs always name a key
            raise KeyManagerError("rotation chose no key")
        return outcome.kid

    async def revoke(self, kid: str) -> None:
        """Emergency: the key leaves the JWKS at once and the edges learn it from the feed. If it
        was signing, another key of its purpose signs at once (a published next key if there is
        one).
        """
        rows = await self._read_rows()
        target = next((row for row in rows if row.kid == kid), None)
        if target is None:
            raise KeyNotFoundError(kid)
        purpose = purpose_of(target)
        needs_key = target.state == ACTIVE and not rotation.nexts(of_purpose(rows, purpose))
        spare = await self._generate(self._schedule_of(purpose).alg) if needs_key else None
        await self._locked(purpose, partial(self._revoke, kid=kid, spare=spare))

    async def run_forever(self, *, sleep: Sleep = asyncio.sleep) -> None:
        """maintain() every key_check_interval (±10 % so replicas spread out), on
        :func:`auth_service.clock.run_every`: a failure is logged and retried next tick;
        cancellation ends the loop.
        """
        await run_every(
            "key-maintenance",
            self._scheduled_maintenance,
            interval=self._next_tick,
            sleep=sleep,
            errors=self._metrics.background_errors,
        )

    async def _scheduled_maintenance(self) -> None:
        """One tick. The failures it expects are logged here, without a traceback: a database
        that cannot be reached, or a key sealed under another KEK (said every tick)."""
        try:
            await self.maintain()
        except _TRANSIENT_ERRORS as exc:
            logger.warning(
                "signing-key maintenance failed; retrying next tick: %s", _error_summary(exc)
            )
        except ConfigError as exc:
            logger.error("signing-key maintenance failed: %s", exc)

    def _next_tick(self) -> float:
        jitter = random.uniform(0.9, 1.1)  # noqa: S311 - spreading replicas, not security
        return self._settings.key_check_interval * jitter

    # -- readers ---------------------------------------------------------------------------------

    async def signing_key(self, purpose: str = ACCESS) -> SigningMaterial:
        """The key that signs ``purpose``'s tokens now: ``access`` tokens, or ``id`` tokens."""
        self._schedule_of(purpose)
        active = (await self._current()).active.get(purpose)
        if active is None:
            raise NoActiveKeyError(f"no active {purpose} signing key")
        return active

    async def verification_key(self, kid: str) -> tuple[str, PublicKey] | None:
        """(alg, public key) of a published key of any purpose, for verifying our own tokens
        (the token's ``typ`` tells an access token from an ID token); None otherwise."""
        return (await self._current()).public.get(kid)

    async def published_algs(self, purpose: str | None = None) -> list[str]:
        """The sorted algorithms of the published keys (active, next, retired) of ``purpose``, or
        of every purpose: what discovery may claim, since a relying party can verify only those.
        """
        algs = (await self._current()).algs
        if purpose is not None:
            self._schedule_of(purpose)
            return list(algs.get(purpose, ()))
        return sorted({alg for names in algs.values() for alg in names})

    async def jwks(self) -> JwksDocument:
        return (await self._current()).jwks

    async def list_keys(self) -> list[KeyInfo]:
        rows = sorted(await self._read_rows(), key=lambda row: (row.created_at, row.kid))
        return [KeyInfo.of(row) for row in rows]

    def key_age_seconds(self) -> float | None:
        snapshot = self._snapshot
        if snapshot is None or snapshot.active_since is None:
            return None
        age = max(0.0, (self._clock() - snapshot.active_since).total_seconds())
        self._metrics.key_age.set(age)
        return age

    def has_active_key(self) -> bool:
        """Every purpose has a key to sign with (a service that cannot sign ID tokens is not
        ready either)."""
        return self._snapshot is not None and all(
            purpose in self._snapshot.active for purpose in PURPOSES
        )

    def _schedule_of(self, purpose: str) -> Schedule:
        schedule = self._schedules.get(purpose)
        if schedule is None:
            raise UnknownPurposeError(f"unknown key purpose {purpose!r} (access or id)")
        return schedule

    # -- locked jobs: each runs on the rows as read under the lock --------------------------------

    async def _locked(self, purpose: str, job: _Job) -> _Outcome:
        """Run ``job`` in one transaction holding the key-rotation lock, on the freshly read rows
        of ``purpose``."""
        async with self._sessions() as session, session.begin():
            await take_rotation_lock(session, self._holder, self._clock())
            result = await session.scalars(select(SigningKey))
            rows = of_purpose(result.all(), purpose)
            outcome = await job(session, rows, self._clock(), purpose)
        if outcome.promotions:
            self._metrics.key_rotations.inc(outcome.promotions)
        for action in outcome.actions:
            logger.info("signing keys: %s", action)
        await self._refresh(force=True)
        return outcome

    async def _apply_plan(
        self,
        session: AsyncSession,
        rows: list[SigningKey],
        now: datetime,
        purpose: str,
        *,
        spare: NewKey | None,
    ) -> _Outcome:
        plan = rotation.plan(rows, now, self._schedules[purpose])
        by_kid = {row.kid: row for row in rows}
        outcome = _Outcome()
        for kid in plan.delete:
            outcome.actions.append(f"removed {by_kid[kid].state} {kid}")
            await session.delete(by_kid[kid])
        for kid in plan.retire:
            rotation.retire(by_kid[kid], now)
            outcome.actions.append(f"retired {kid}")
        if plan.promote is not None:
            rotation.activate(by_kid[plan.promote], now)
            outcome.actions.append(f"promoted {plan.promote}")
            outcome.promotions += 1
        if plan.create is not None:
            row = await self._add_key(session, plan.create, now, spare, purpose)
            outcome.actions.append(rotation.describe_new(row))
        return outcome

    async def _schedule_rotation(
        self,
        session: AsyncSession,
        rows: list[SigningKey],
        now: datetime,
        purpose: str,
        *,
        spare: NewKey | None,
    ) -> _Outcome:
        """Bring the next key forward (never to less than one lead after it was published), or
        publish one to sign one lead from now.
        """
        schedule = self._schedules[purpose]
        nexts = rotation.nexts(rows)
        if nexts:
            row = nexts[0]
            when = rotation.brought_forward(row, now, schedule.lead)
            row.promote_after = when
            action = f"next key {row.kid} signs from {when.isoformat()}"
            return _Outcome(kid=row.kid, actions=[action])
        plan = NewKeyPlan(schedule.alg, now + schedule.lead)
        row = await self._add_key(session, plan, now, spare, purpose)
        return _Outcome(kid=row.kid, actions=[rotation.describe_new(row)])

    async def _rotate_now(
        self,
        session: AsyncSession,
        rows: list[SigningKey],
        now: datetime,
        purpose: str,
        *,
        spare: NewKey | None,
    ) -> _Outcome:
        outcome = _Outcome(promotions=1)
        for row in rotation.actives(rows):
            rotation.retire(row, now)
            outcome.actions.append(f"retired {row.kid}")
        plan = NewKeyPlan(self._schedules[purpose].alg, None)
        new = await self._add_key(session, plan, now, spare, purpose)
        outcome.kid = new.kid
        outcome.actions.append(f"{rotation.describe_new(new)} (forced, unpublished before)")
        return outcome

    async def _revoke(
        self,
        session: AsyncSession,
        rows: list[SigningKey],
        now: datetime,
        purpose: str,
        *,
        kid: str,
        spare: NewKey | None,
    ) -> _Outcome:
        target = next((row for row in rows if row.kid == kid), None)
        if target is None:
            raise KeyNotFoundError(kid)
        if target.state == REVOKED:
            return _Outcome(kid=kid)  # already done: no second feed entry
        previous = rotation.revoke(target, now)
        outcome = _Outcome(kid=kid, actions=[f"revoked {previous} key {kid}"])
        replacement = None
        if previous == ACTIVE and not rotation.actives(rows):
            replacement = await self._replace_active(
                session, rows, now, spare, outcome, purpose=purpose
            )
        await self._record_revocation(session, kid, previous, replacement, now, purpose=purpose)
        return outcome

    async def _replace_active(
        self,
        session: AsyncSession,
        rows: list[SigningKey],
        now: datetime,
        spare: NewKey | None,
        outcome: _Outcome,
        *,
        purpose: str,
    ) -> str:
        """A published next key if there is one (edges already hold it), else a new key."""
        nexts = rotation.nexts(rows)
        if nexts:
            rotation.activate(nexts[0], now)
            outcome.actions.append(f"promoted {nexts[0].kid}")
            outcome.promotions += 1
            return nexts[0].kid
        plan = NewKeyPlan(self._schedules[purpose].alg, None)
        row = await self._add_key(session, plan, now, spare, purpose)
        outcome.actions.append(rotation.describe_new(row))
        outcome.promotions += 1
        return row.kid

    async def _record_revocation(
        self,
        session: AsyncSession,
        kid: str,
        previous: str,
        replacement: str | None,
        now: datetime,
        *,
        purpose: str,
    ) -> None:
        """The feed entry lives as long as any token the key signed: its purpose's token TTL plus
        leeway."""
        expires_at = now + self._schedules[purpose].expiry
        await revocation.record(session, self._settings, "key", kid, now, expires_at=expires_at)
        session.add(
            SecurityEvent(
                kind="key_revoked",
                user_id=None,
                session_id=None,
                ip=None,
                detail={"kid": kid, "previous_state": previous, "replacement_kid": replacement},
                created_at=now,
            )
        )

    async def _add_key(
        self,
        session: AsyncSession,
        plan: NewKeyPlan,
        now: datetime,
        spare: NewKey | None,
        purpose: str,
    ) -> SigningKey:
        """Insert a key of ``purpose``, using the one generated before the lock if it has the
        right algorithm."""
        new = (
            spare if spare is not None and spare.alg == plan.alg else await self._generate(plan.alg)
        )
        row = rotation.new_row(new, plan, now, purpose)
        session.add(row)
        return row

    async def _generate(self, alg: str) -> NewKey:
        return await asyncio.to_thread(new_key, self._kek, alg)

    async def _read_rows(self) -> list[SigningKey]:
        async with self._sessions() as session:
            return list((await session.scalars(select(SigningKey))).all())

    # -- snapshot --------------------------------------------------------------------------------

    async def _current(self) -> Snapshot:
        snapshot = self._snapshot
        if snapshot is not None and self._is_fresh(snapshot):
            return snapshot
        return await self._refresh(force=False)

    def _is_fresh(self, snapshot: Snapshot) -> bool:
        age = (self._clock() - snapshot.loaded_at).total_seconds()
        return 0 <= age < self._snapshot_max_age  # a clock stepping back also reloads

    async def _refresh(self, *, force: bool) -> Snapshot:
        """Reload once for all waiting callers. ``force`` (after our own change) always reads,
        since a reload already under way may have started before the change committed.

        When the database is unreachable the last snapshot keeps serving (nothing can change
        the keys meanwhile), retried after another snapshot lifetime.
        """
        async with self._reload_lock:
            current = self._snapshot
            if not force and current is not None and self._is_fresh(current):
                return current
            try:
                snapshot = await self._load_snapshot()
            except _TRANSIENT_ERRORS as exc:
                if force or current is None:
                    raise
                logger.warning(
                    "cannot reload the signing keys; serving the last loaded set: %s",
                    _error_summary(exc),
                )
                snapshot = replace(current, loaded_at=self._clock())
            self._snapshot = snapshot
            return snapshot

    async def _load_snapshot(self) -> Snapshot:
        async with self._sessions() as session:
            result = await session.scalars(
                select(SigningKey).where(SigningKey.state.in_(PUBLISHED_STATES))
            )
            rows = list(result.all())
        await self._unseal_missing(rows)
        snapshot = published.snapshot(rows, self._private, self._clock())
        self._metrics.keys_published.set(len(rows))
        self._metrics.key_age.set(
            (snapshot.loaded_at - snapshot.active_since).total_seconds()
            if snapshot.active_since is not None
            else float("nan")
        )
        return snapshot

    async def _unseal_missing(self, rows: Sequence[SigningKey]) -> None:
        """Decrypt (in a thread) the keys not cached yet; forget the keys no longer published."""
        missing = [(r.kid, r.alg, r.private_key_enc) for r in rows if r.kid not in self._private]
        if missing:
            self._private.update(await asyncio.to_thread(unseal_all, self._kek, missing))
        kept = {row.kid for row in rows}
        self._private = {kid: key for kid, key in self._private.items() if kid in kept}


def _error_summary(exc: BaseException) -> str:
    """The driver's message, never SQLAlchemy's rendering of the statement and its parameters
    (which would put sealed key bytes in a log line).
    """
    if isinstance(exc, DBAPIError):
        return f"{type(exc.orig).__name__}: {exc.orig}"
    if isinstance(exc, SQLAlchemyError):
        return type(exc).__name__
    return f"{type(exc).__name__}: {exc}"

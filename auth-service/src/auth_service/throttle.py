"""Slowing down guessing without letting an attacker lock a victim out.

Counters of recent failures, each with its own allowance before an exponential back-off.
Logins count three:

- the pair (account, client address): strict (5 free failures, back-off up to 15 minutes). This is
  what stops one attacker hammering one account;
- the client address: loose (50 free failures), against one address spraying many accounts;
- the account from anywhere: very loose (100), capped at one minute, and **waived for an address
  with no recent failure**. Without the waiver an attacker elsewhere who has used up the account's
  allowance re-arms its block with one failure a minute, and since the block is checked before
  the password, the owner never gets to prove who they are. With it, the owner trying from an
  address that has not failed gets through; each address an attacker uses gets one such attempt
  per window, after which the account rule applies to it too.

Signups count attempts per client address, and client authentication (``clients.py``) counts
failures per client id (waived like the account rule) and per address.

**An address** is an IPv4 address, or an IPv6 /64 (:func:`address_key`): one subscriber or LAN
is usually handed a whole /64, so counting its addresses one by one would give an attacker
unlimited clean addresses. An IPv4-mapped IPv6 address counts as its IPv4 address.

**Reserve, then check.** A login counts as a failure *before* its password is hashed, in one
transaction that locks the counters (rows created if missing, locked in key order: SQLite takes
its write lock at BEGIN, PostgreSQL row locks). Concurrent attempts therefore queue on the
counters: once the allowance is used up, the rest are refused without reaching argon2. A correct
password then settles the reservation: it clears the account's counters and gives the address its
attempt back. An attempt refused after its reservation without checking the password (the hashing
queue was full) releases it: every counter it touched gets its attempt back. A client secret is
cheap to compare, so it is compared inside the locked transaction itself.

Failures older than ``throttle_window`` are forgotten. No lock is permanent. Counters live in the
database so every replica sees them, keyed by a hash rather than the email address or client id.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Insert, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth_service.clock import Clock
from auth_service.config import Settings
from auth_service.models import LoginThrottle

# Rows deleted by housekeeping between our insert and our lock are inserted again: a few rounds.
_LOCK_ROUNDS = 5


class Throttled(Exception):
    """The caller must wait ``retry_after`` seconds (the callers turn it into their own 429)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


class ThrottleContention(Exception):
    """The counters kept disappearing under us (housekeeping racing a burst): give up."""


@dataclass(frozen=True)
class Rule:
    key: str
    free: int
    max_delay: float
    # Not applied to a caller whose own counters (the rules without this flag) show no recent
    # failure: the account-wide and client-wide rules, so they cannot lock out the owner.
    waived_when_clean: bool = False


@dataclass(frozen=True)
class _Mark:
    """What a reservation did to one counter's block, so a refund can undo exactly that."""

    key: str
    before: datetime | None
    after: datetime | None


@dataclass(frozen=True)
class Reservation:
    """An attempt counted ahead of its check (a login as a failure, on its pair, address and
    account counters in that order; a signup on its address counter). A login is settled if the
    password is right; either is released if it is refused before the check."""

    marks: tuple[_Mark, ...]


_IPV6_PREFIX = 64


def address_key(ip: str) -> str:
    """What the per-address counters count: an IPv4 address, or the /64 of an IPv6 address (an
    IPv4-mapped one counts as its IPv4 address). Anything else (``unknown``) is kept as given."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        host_bits = address.max_prefixlen - _IPV6_PREFIX
        network = ipaddress.IPv6Address(int(address) >> host_bits << host_bits)
        return f"{network}/{_IPV6_PREFIX}"
    return str(address)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:40]


def _insert_missing(dialect: str, keys: Sequence[str], now: datetime) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` of empty counters (waits on a concurrent insert)."""
    values = [
        {"key": key, "failures": 0, "last_failure_at": now, "blocked_until": None} for key in keys
    ]
    if dialect == "postgresql":
        return postgresql.insert(LoginThrottle).values(values).on_conflict_do_nothing()
    return sqlite.insert(LoginThrottle).values(values).on_conflict_do_nothing()


async def _locked(db: AsyncSession, keys: Sequence[str], now: datetime) -> dict[str, LoginThrottle]:
    """The counters of ``keys``, created if missing and locked (in key order) until commit."""
    ordered = sorted(set(keys))
    dialect = db.get_bind().dialect.name
    for _ in range(_LOCK_ROUNDS):
        await db.execute(_insert_missing(dialect, ordered, now))
        rows = await db.scalars(
            select(LoginThrottle)
            .where(LoginThrottle.key.in_(ordered))
            .order_by(LoginThrottle.key)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        found = {row.key: row for row in rows}
        if len(found) == len(ordered):
            return found
    raise ThrottleContention("throttle counters could not be locked")


class LoginThrottler:
    def __init__(
        self, settings: Settings, sessions: async_sessionmaker[AsyncSession], clock: Clock
    ) -> None:
        self._s = settings
        self._sessions = sessions
        self._clock = clock

    # -- the rules -----------------------------------------------------------------------------

    def _login_rules(self, email: str, ip: str) -> tuple[Rule, Rule, Rule]:
        s = self._s
        address = address_key(ip)
        return (
            Rule("p:" + _digest(email, address), s.throttle_pair_free, s.throttle_max_delay),
            Rule("i:" + _digest(address), s.throttle_ip_free, s.throttle_max_delay),
            Rule(
                "a:" + _digest(email),
                s.throttle_account_free,
                s.throttle_account_max_delay,
                waived_when_clean=True,
            ),
        )

    def _signup_rule(self, ip: str) -> Rule:
        s = self._s
        return Rule("s:" + _digest(address_key(ip)), s.throttle_signup_free, s.throttle_max_delay)

    def _client_rules(self, client_id: str | None, ip: str) -> list[Rule]:
        s = self._s
        address = address_key(ip)
        rules = [Rule("ci:" + _digest(address), s.throttle_client_ip_free, s.throttle_max_delay)]
        if client_id is not None:  # only configured clients: unknown ids make no rows
            rules.append(
                Rule(
                    "c:" + _digest(client_id),
                    s.throttle_client_free,
                    s.throttle_account_max_delay,
                    waived_when_clean=True,
                )
            )
        return rules

    # -- logins --------------------------------------------------------------------------------

    async def reserve_login(self, email: str, ip: str) -> Reservation:
        """Count this attempt as a failure now, or raise :class:`Throttled` (nothing counted)."""
        rules = self._login_rules(email, ip)
        marks = await self._reserve(rules)
        return Reservation(tuple(marks[rule.key] for rule in rules))

    async def login_succeeded(self, reservation: Reservation) -> None:
        """A correct password: clear the account's counters, give the address its attempt back."""
        pair, address, account = reservation.marks
        now = self._clock()
        async with self._sessions() as db:
            rows = await _locked(db, [pair.key, address.key, account.key], now)
            for key in (pair.key, account.key):
                rows[key].failures = 0
                rows[key].blocked_until = None
            self._refund(rows[address.key], address)
            await db.commit()

    async def release(self, reservation: Reservation) -> None:
        """The attempt was refused before its check (the hashing queue was full): give every
        counter it touched its attempt back, so the refusal counts as nothing."""
        now = self._clock()
        async with self._sessions() as db:
            rows = await _locked(db, [mark.key for mark in reservation.marks], now)
            for mark in reservation.marks:
                self._refund(rows[mark.key], mark)
            await db.commit()

    # -- signups -------------------------------------------------------------------------------

    async def reserve_signup(self, ip: str) -> Reservation:
        """Count one signup attempt from ``ip``, or raise :class:`Throttled`."""
        rule = self._signup_rule(ip)
        marks = await self._reserve([rule])
        return Reservation((marks[rule.key],))

    # -- client authentication -----------------------------------------------------------------

    async def check_client(self, client_id: str | None, ip: str, check: Callable[[], bool]) -> bool:
        """Run ``check`` (a constant-time secret comparison) under the client's counters.

        Raises :class:`Throttled` before checking when blocked; a failed check is counted in the
        same transaction, so concurrent guesses cannot slip past the allowance.
        """
        rules = self._client_rules(client_id, ip)
        now = self._clock()
        async with self._sessions() as db:
            rows = await _locked(db, [rule.key for rule in rules], now)
            wait = self._wait(rules, rows, now)
            if wait is not None:
                await db.rollback()
                raise Throttled(wait)
            if check():
                await db.rollback()  # nothing to count; drops counters created just now
                return True
            for rule in rules:
                self._count(rows[rule.key], rule, now)
            await db.commit()
        return False

    # -- housekeeping --------------------------------------------------------------------------

    async def forget_old(self) -> int:
        """Housekeeping: drop counters whose window and back-off are both over.

        Rows another transaction holds are skipped (``SKIP LOCKED``), so housekeeping never waits
        on, or deadlocks with, a login.
        """
        now = self._clock()
        cutoff = now - timedelta(seconds=self._s.throttle_window)
        stale = (
            select(LoginThrottle.key)
            .where(
                LoginThrottle.last_failure_at < cutoff,
                or_(LoginThrottle.blocked_until.is_(None), LoginThrottle.blocked_until < now),
            )
            .with_for_update(skip_locked=True)
        )
        async with self._sessions() as db:
            result = await db.execute(delete(LoginThrottle).where(LoginThrottle.key.in_(stale)))
            await db.commit()
        return int(getattr(result, "rowcount", 0) or 0)

    # -- the mechanism -------------------------------------------------------------------------

    async def _reserve(self, rules: Sequence[Rule]) -> dict[str, _Mark]:
        now = self._clock()
        async with self._sessions() as db:
            rows = await _locked(db, [rule.key for rule in rules], now)
            wait = self._wait(rules, rows, now)
            if wait is not None:
                await db.rollback()
                raise Throttled(wait)
            marks = {rule.key: self._count(rows[rule.key], rule, now) for rule in rules}
            await db.commit()
        return marks

    def _recent(self, row: LoginThrottle, now: datetime) -> bool:
        window = timedelta(seconds=self._s.throttle_window)
        return row.failures > 0 and now - row.last_failure_at <= window

    def _wait(
        self, rules: Sequence[Rule], rows: dict[str, LoginThrottle], now: datetime
    ) -> int | None:
        """Seconds until every rule that applies to this caller lets it through, or None."""
        own = [rows[rule.key] for rule in rules if not rule.waived_when_clean]
        clean = not any(self._recent(row, now) for row in own)
        ends = [
            rows[rule.key].blocked_until for rule in rules if not (rule.waived_when_clean and clean)
        ]
        blocked = [end for end in ends if end is not None and end > now]
        if not blocked:
            return None
        return max(1, math.ceil((max(blocked) - now).total_seconds()))

    def _count(self, row: LoginThrottle, rule: Rule, now: datetime) -> _Mark:
        """One more failure; after the free ones are used up, each further one doubles the wait."""
        before = row.blocked_until
        if now - row.last_failure_at > timedelta(seconds=self._s.throttle_window):
            row.failures = 0
        row.failures += 1
        row.last_failure_at = now
        over = row.failures - rule.free
        if over >= 0:
            delay = min(self._s.throttle_base_delay * 2**over, rule.max_delay)
            until = now + timedelta(seconds=delay)
            row.blocked_until = until if before is None else max(before, until)
        return _Mark(rule.key, before, row.blocked_until)

    @staticmethod
    def _refund(row: LoginThrottle, mark: _Mark) -> None:
        """Undo one counted failure; and its block, unless a later failure has moved it since."""
        row.failures = max(0, row.failures - 1)
        if row.blocked_until == mark.after:
            row.blocked_until = mark.before

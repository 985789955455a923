"""Slowing down password guessing without letting an attacker lock a victim out.

Three counters of recent failures, each with its own allowance before an exponential back-off:

- the pair (account, client address): strict (5 free failures, back-off up to 15 minutes). This is
  what stops one attacker hammering one account;
- the client address: loose (50 free failures), against one address spraying many accounts;
- the account from anywhere: very loose (100), and capped at one minute, so a distributed attack is
  slowed while the owner, trying from their own address, is never locked out for long.

Failures older than ``throttle_window`` are forgotten. No lock is permanent. Counters live in the
database so every replica sees them, keyed by a hash rather than the email address.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth_service.clock import Clock
from auth_service.config import Settings
from auth_service.models import LoginThrottle


@dataclass(frozen=True)
class _Rule:
    key: str
    free: int
    max_delay: float


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:40]


class LoginThrottler:
    def __init__(
        self, settings: Settings, sessions: async_sessionmaker[AsyncSession], clock: Clock
    ) -> None:
        self._s = settings
        self._sessions = sessions
        self._clock = clock

    def _rules(self, email: str, ip: str) -> list[_Rule]:
        s = self._s
        return [
            _Rule("p:" + _digest(email, ip), s.throttle_pair_free, s.throttle_max_delay),
            _Rule("i:" + _digest(ip), s.throttle_ip_free, s.throttle_max_delay),
            _Rule("a:" + _digest(email), s.throttle_account_free, s.throttle_account_max_delay),
        ]

    async def retry_after(self, email: str, ip: str) -> int | None:
        """Seconds the caller must wait before another attempt, or None."""
        now = self._clock()
        keys = [rule.key for rule in self._rules(email, ip)]
        async with self._sessions() as db:
            rows = await db.scalars(select(LoginThrottle).where(LoginThrottle.key.in_(keys)))
            blocked = [r.blocked_until for r in rows if r.blocked_until and r.blocked_until > now]
        if not blocked:
            return None
        return max(1, math.ceil((max(blocked) - now).total_seconds()))

    async def record_failure(self, email: str, ip: str) -> None:
        now = self._clock()
        async with self._sessions() as db:
            for rule in self._rules(email, ip):
                await self._bump(db, rule, now)
            await db.commit()

    async def record_success(self, email: str, ip: str) -> None:
        """A correct password clears the account's counters (not the address's)."""
        pair, _ip, account = self._rules(email, ip)
        async with self._sessions() as db:
            await db.execute(
                delete(LoginThrottle).where(LoginThrottle.key.in_([pair.key, account.key]))
            )
            await db.commit()

    async def forget_old(self) -> int:
        """Housekeeping: drop counters whose window and back-off are both over."""
        now = self._clock()
        cutoff = now - timedelta(seconds=self._s.throttle_window)
        async with self._sessions() as db:
            result = await db.execute(
                delete(LoginThrottle).where(
                    LoginThrottle.last_failure_at < cutoff,
                    or_(LoginThrottle.blocked_until.is_(None), LoginThrottle.blocked_until < now),
                )
            )
            await db.commit()
        return int(getattr(result, "rowcount", 0) or 0)

    async def _bump(self, db: AsyncSession, rule: _Rule, now: datetime) -> None:
        row = await db.get(LoginThrottle, rule.key, with_for_update=True)
        if row is None:
            row = LoginThrottle(key=rule.key, failures=0, last_failure_at=now, blocked_until=None)
            try:
                async with db.begin_nested():
                    db.add(row)
            except IntegrityError:
                row = await db.get(
                    LoginThrottle, rule.key, with_for_update=True, populate_existing=True
                )
                if row is None:
                    return
        if now - row.last_failure_at > timedelta(seconds=self._s.throttle_window):
            row.failures = 0
        row.failures += 1
        row.last_failure_at = now
        # After the free failures are used up, each further one doubles the wait.
        over = row.failures - rule.free
        if over >= 0:
            delay = min(self._s.throttle_base_delay * 2**over, rule.max_delay)
            row.blocked_until = now + timedelta(seconds=delay)

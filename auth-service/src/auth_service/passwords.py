"""Password hashing (argon2id) and the password policy (NIST SP 800-63B spirit).

The policy asks for length, not composition: at least ``password_min_length`` characters, at most
``password_max_length``, and not one of the 30,000 most common passwords (the list ships inside the
``zxcvbn`` package, so no network call is made). Passwords are NFKC-normalised first, as 800-63B
suggests, so the same password typed on two keyboards hashes the same.

Hashing is slow on purpose (about 0.2 s at the defaults) and memory-hungry, so it runs in a worker
thread under a semaphore: the event loop never blocks, and a burst of logins cannot take all memory.
"""

from __future__ import annotations

import asyncio
import time
import unicodedata
from collections.abc import Callable
from functools import cache
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from auth_service.config import Settings
from auth_service.errors import WeakPasswordError
from auth_service.metrics import Metrics

T = TypeVar("T")


@cache
def common_passwords() -> frozenset[str]:
    return frozenset(word.lower() for word in FREQUENCY_LISTS["passwords"])


def normalise(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def check_policy(password: str, settings: Settings, *, email: str | None = None) -> None:
    """Raise :class:`WeakPasswordError` saying why a new password is refused."""
    text = normalise(password)
    if len(text) < settings.password_min_length:
        raise WeakPasswordError(
            f"The password must have at least {settings.password_min_length} characters."
        )
    if len(text) > settings.password_max_length:
        raise WeakPasswordError(
            f"The password must have at most {settings.password_max_length} characters."
        )
    lowered = text.lower()
    if lowered in common_passwords():
        raise WeakPasswordError(
            "This password is on the list of the most common passwords; choose another."
        )
    if email and lowered in {email.lower(), email.split("@", 1)[0].lower()}:
        raise WeakPasswordError("The password must not be the email address.")


class PasswordService:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost,
            parallelism=settings.argon2_parallelism,
            type=Type.ID,
        )
        self._slots = asyncio.Semaphore(settings.max_concurrent_hashes)
        self._metrics = metrics
        self._dummy_hash: str | None = None

    async def prepare(self) -> None:
        """Compute the dummy hash that unknown accounts are checked against."""
        self._dummy_hash = await self.hash("gatepass-dummy-password-for-timing")

    async def hash(self, password: str) -> str:
        return await self._timed(self._hasher.hash, normalise(password))

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Check a password; with no hash (unknown account) check a dummy so timing matches."""
        target = password_hash or self._dummy_hash
        if target is None:
            raise RuntimeError("PasswordService.prepare() was not awaited")
        ok = await self._timed(self._verify_sync, target, normalise(password))
        return ok and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

    def _verify_sync(self, password_hash: str, password: str) -> bool:
        try:
            return bool(self._hasher.verify(password_hash, password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def _timed(self, fn: Callable[..., T], *args: str) -> T:
        async with self._slots:
            start = time.perf_counter()
            try:
                return await asyncio.to_thread(fn, *args)
            finally:
                self._metrics.password_hash_seconds.observe(time.perf_counter() - start)

"""Password hashing (argon2id) and the password policy (NIST SP 800-63B spirit).

The policy asks for length, not composition. A new password is refused, with a reason, when it:

- has fewer than ``password_min_length`` or more than ``password_max_length`` characters, counted
  in code points as typed (before normalisation: one ligature that NFKC expands to 18 letters is
  one character);
- holds a control, format (zero-width, bidi) or unassigned character, or a lone surrogate: they
  are invisible, so the owner cannot know what they typed, and pad a weak password unseen;
- is only whitespace, or trivially repetitive (fewer than three different characters, a short
  unit repeated, or a run like ``abcdefgh``);
- is one of the 30,000 most common passwords (the list ships inside the ``zxcvbn`` package, so no
  network call is made), ignoring case and whitespace, also once trailing digits and punctuation
  are stripped (``Password 1!`` is ``password``); or is the email address or its local part.

Passwords are NFKC-normalised before hashing, as 800-63B suggests, so the same password typed on
two keyboards hashes the same.

Hashing is slow on purpose (the ``argon2_*`` settings set its cost) and memory-hungry, so it runs
in worker threads, at most ``max_concurrent_hashes`` at once. Callers wait for a slot in a bounded
queue: when ``password_queue_size`` are already waiting, a new caller is refused at once (503 with
``Retry-After``, counted in ``gatepass_auth_password_queue_rejections_total``) instead of making
everyone wait longer. A login or signup takes its place in the queue only once the throttle has
let it through, so attempts the throttle refuses never crowd out anyone else; one then refused by
a full queue gives its throttle count back (see :mod:`auth_service.accounts`).
"""

from __future__ import annotations

import asyncio
import math
import string
import time
import unicodedata
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import cache
from itertools import pairwise
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from auth_service.config import Settings
from auth_service.errors import OverloadedError, WeakPasswordError
from auth_service.metrics import Metrics

T = TypeVar("T")

# Unicode categories a password may not hold: control, format, surrogate, unassigned.
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Cn"})
_SUFFIX = string.digits + string.punctuation
_MIN_DISTINCT = 3
_MAX_RETRY_AFTER = 60


@cache
def common_passwords() -> frozenset[str]:
    return frozenset(word.lower() for word in FREQUENCY_LISTS["passwords"])


def normalise(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def _refuse(reason: str, detail: str) -> WeakPasswordError:
    return WeakPasswordError(detail, reason=reason)


def _check_length(password: str, settings: Settings) -> None:
    if len(password) < settings.password_min_length:
        raise _refuse(
            "too_short",
            f"The password must have at least {settings.password_min_length} characters.",
        )
    if len(password) > settings.password_max_length:
        raise _refuse(
            "too_long",
            f"The password must have at most {settings.password_max_length} characters.",
        )


def _check_characters(password: str) -> None:
    if any(unicodedata.category(char) in _INVISIBLE for char in password):
        raise _refuse(
            "invisible_characters",
            "The password must not contain control, format (such as zero-width) or unassigned "
            "characters.",
        )


def _is_sequence(text: str) -> bool:
    """``aaaa``, ``abcd``, ``4321``: every step between neighbours the same, and at most one."""
    steps = {ord(b) - ord(a) for a, b in pairwise(text)}
    return len(steps) == 1 and abs(next(iter(steps))) <= 1


def _is_repeated_unit(text: str, shortest_strong: int) -> bool:
    """``abcabcabc``: a unit shorter than a valid password, repeated."""
    for size in range(1, min(shortest_strong, len(text) // 2 + 1)):
        if len(text) % size == 0 and text[:size] * (len(text) // size) == text:
            return True
    return False


def _check_repetition(text: str, settings: Settings) -> None:
    if not text.strip():
        raise _refuse("whitespace", "The password must not be only spaces.")
    compact = "".join(text.lower().split())
    if (
        len(set(compact)) < _MIN_DISTINCT
        or _is_sequence(compact)
        or _is_repeated_unit(compact, settings.password_min_length)
    ):
        raise _refuse(
            "repetitive", "The password is too repetitive (a character, a pattern or a run)."
        )


def _guessable_forms(text: str) -> set[str]:
    """The password lowercased; without whitespace; and without trailing digits or punctuation."""
    lowered = text.lower()
    compact = "".join(lowered.split())
    core = compact.rstrip(_SUFFIX)
    return {form for form in (lowered, compact, core) if form}


def _check_guessable(text: str, email: str | None) -> None:
    forms = _guessable_forms(text)
    if forms & common_passwords():
        raise _refuse(
            "common",
            "This password is on the list of the most common passwords (ignoring case, spaces, "
            "and digits or symbols at the end); choose another.",
        )
    if email:
        address = email.lower()
        if forms & {address, address.split("@", 1)[0]}:
            raise _refuse("email", "The password must not be the email address.")


def check_policy(password: str, settings: Settings, *, email: str | None = None) -> None:
    """Raise :class:`WeakPasswordError` saying why a new password is refused (never echoing it)."""
    _check_length(password, settings)
    _check_characters(password)
    text = normalise(password)
    _check_repetition(text, settings)
    _check_guessable(text, email)


def _secret_bytes(password: str) -> bytes:
    """What argon2 hashes: the NFKC form as UTF-8 (a lone surrogate, which the policy refuses
    for new passwords, still encodes, so a login that sends one is just a wrong password)."""
    return normalise(password).encode("utf-8", "surrogatepass")


class Hashing:
    """Password work for a caller admitted to the queue (see :meth:`PasswordService.admission`)."""

    def __init__(self, service: PasswordService) -> None:
        self._service = service

    async def hash(self, password: str) -> str:
        return await self._service._timed(self._service._hash_sync, _secret_bytes(password))

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Check a password; with no hash (unknown account) check a dummy so timing matches."""
        target = password_hash or self._service.dummy_hash
        ok = await self._service._timed(self._service._verify_sync, target, _secret_bytes(password))
        return ok and password_hash is not None


class PasswordService:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost,
            parallelism=settings.argon2_parallelism,
            type=Type.ID,
        )
        self._slots = asyncio.Semaphore(settings.max_concurrent_hashes)
        self._concurrency = settings.max_concurrent_hashes
        self._capacity = settings.max_concurrent_hashes + settings.password_queue_size
        self._admitted = 0
        self._mean_seconds = 0.2  # a running estimate, for Retry-After
        self._metrics = metrics
        self._dummy_hash: str | None = None

    async def prepare(self) -> None:
        """Compute the dummy hash that unknown accounts are checked against."""
        self._dummy_hash = await self.hash("gatepass-dummy-password-for-timing")

    @property
    def dummy_hash(self) -> str:
        if self._dummy_hash is None:
            raise RuntimeError("PasswordService.prepare() was not awaited")
        return self._dummy_hash

    @asynccontextmanager
    async def admission(self) -> AsyncIterator[Hashing]:
        """A place in the hashing queue for the whole of one request's password work.

        Raises :class:`OverloadedError` at once when the queue is full.
        """
        if self._admitted >= self._capacity:
            self._metrics.password_queue_rejections.inc()
            raise OverloadedError(self._retry_after())
        self._admitted += 1
        self._metrics.password_queue_depth.set(self._admitted)
        try:
            yield Hashing(self)
        finally:
            self._admitted -= 1
            self._metrics.password_queue_depth.set(self._admitted)

    async def hash(self, password: str) -> str:
        async with self.admission() as hashing:
            return await hashing.hash(password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        async with self.admission() as hashing:
            return await hashing.verify(password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

    def _hash_sync(self, password: bytes) -> str:
        return str(self._hasher.hash(password))

    def _verify_sync(self, password_hash: str, password: bytes) -> bool:
        try:
            return bool(self._hasher.verify(password_hash, password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def _retry_after(self) -> int:
        """About how long the queue now takes to drain, in whole seconds."""
        drain = self._capacity * self._mean_seconds / self._concurrency
        return min(_MAX_RETRY_AFTER, max(1, math.ceil(drain)))

    async def _timed(self, fn: Callable[..., T], *args: str | bytes) -> T:
        async with self._slots:
            start = time.perf_counter()
            try:
                return await asyncio.to_thread(fn, *args)
            finally:
                elapsed = time.perf_counter() - start
                self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * elapsed
                self._metrics.password_hash_seconds.observe(elapsed)

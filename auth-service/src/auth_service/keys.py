"""Signing keys: their life cycle, their encryption at rest, and the JWKS that publishes them.

A key is ``next`` (published, not signing) -> ``active`` (signing) -> ``retired`` (published until
every token it signed has expired) -> deleted; or ``revoked`` (out of the JWKS at once). A new key
is published at least ``settings.key_publish_lead`` (one JWKS cache lifetime plus a minute)
before it signs, so every edge already holds it when the first token arrives.

Every change happens in one transaction that first updates the ``key-rotation`` row of ``locks``:
on PostgreSQL that row lock serialises the replicas, on SQLite the update takes the write lock. The
key rows are read again under the lock and the decision is made from them, so with any number of
replicas exactly one rotates.

Readers (token signing, our own verification, the JWKS route) use an in-memory snapshot reloaded
at most every few seconds, so signing a token costs no database round trip.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import os
import random
import re
import secrets
import socket
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any, Final, TypeAlias, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import CursorResult, Insert, select, update
from sqlalchemy import insert as sql_insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth_service.clock import Clock
from auth_service.config import ConfigError, Settings
from auth_service.metrics import Metrics
from auth_service.models import Lock, RevocationEvent, SecurityEvent, SigningKey
from gatepass.db import private_dir

logger = logging.getLogger("gatepass.auth.keys")

PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey: TypeAlias = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

NEXT: Final = "next"
ACTIVE: Final = "active"
RETIRED: Final = "retired"
REVOKED: Final = "revoked"
PUBLISHED_STATES: Final = (ACTIVE, NEXT, RETIRED)

LOCK_NAME: Final = "key-rotation"
KEK_BYTES: Final = 32
NONCE_BYTES: Final = 12
# Seconds a key's tokens may outlive its last signature beyond the access-token TTL: clock skew at
# the edges, plus the few seconds another replica may sign from a stale snapshot.
EXPIRY_LEEWAY: Final = 60
# Readers reload their snapshot at least this often (or every key_check_interval if shorter).
SNAPSHOT_MAX_AGE: Final = 5.0
# RSA 2048 rather than 3072: a key signs for one rotation interval (30 days by default) and is
# published a few minutes longer, so breaking it is only worth anything during that window, for
# which 2048 bits is ample (NIST SP 800-57 accepts it to 2030). 3072 would make every token
# issuance about four times slower and every token 128 bytes longer, for no gain in this window.
RSA_KEY_BITS: Final = 2048

# The public members of each key type, exactly as RFC 7638 lists them for the thumbprint.
_THUMBPRINT_MEMBERS: Final[Mapping[str, tuple[str, ...]]] = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
}
_STATE_ORDER: Final[Mapping[str, int]] = {ACTIVE: 0, NEXT: 1, RETIRED: 2}
_HEX_KEK = re.compile(r"[0-9A-Fa-f]{64}")
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_TRANSIENT_ERRORS = (SQLAlchemyError, OSError)


class KeyManagerError(Exception):
    """Base of the errors the key manager raises on purpose."""


class KeyNotFoundError(KeyManagerError):
    """No signing key has the given kid (never existed, or already removed)."""


class NoActiveKeyError(KeyManagerError):
    """There is no key to sign with (the manager was not started, or every key was removed)."""


@dataclass(frozen=True)
class SigningMaterial:
    kid: str
    alg: str
    private_key: PrivateKey


@dataclass(frozen=True)
class KeyInfo:
    """One key as the operator CLI shows it (never the private part)."""

    kid: str
    alg: str
    state: str
    created_at: datetime
    promote_after: datetime | None
    activated_at: datetime | None
    retired_at: datetime | None
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class JwksDocument:
    body: bytes
    etag: str


# --- key-encryption key ------------------------------------------------------------------------


def load_kek(settings: Settings) -> bytes:
    """The 32-byte key-encryption key (KEK) that seals the private signing keys at rest.

    From ``settings.kek`` or ``settings.kek_file``; in development, generated once into the data
    folder so a local run needs no setup, and reused so restarts keep every session valid. A
    trivially weak key is refused (:func:`_refuse_weak_kek`), in development too.
    """
    if settings.kek is not None and settings.kek_file is not None:
        raise ConfigError(
            "both GATEPASS_AUTH_KEK and GATEPASS_AUTH_KEK_FILE are set; set only one, "
            "so there is no doubt which key-encryption key seals the signing keys"
        )
    if settings.kek is not None:
        source = "GATEPASS_AUTH_KEK"
        kek = _parse_kek_text(settings.kek.get_secret_value(), source)
    elif settings.kek_file is not None:
        source = "GATEPASS_AUTH_KEK_FILE"
        kek = _read_kek_file(settings.kek_file, source)
    elif settings.is_development:
        source = "the development key-encryption key"
        kek = _development_kek(settings.data_dir / "kek")
    else:
        raise _no_kek()
    _refuse_weak_kek(kek, source)
    return kek


def _no_kek() -> ConfigError:
    return ConfigError(
        "no key-encryption key: set GATEPASS_AUTH_KEK_FILE (a file holding 32 bytes, raw or as "
        "base64url/hex text) or GATEPASS_AUTH_KEK, or GATEPASS_AUTH_ENVIRONMENT=development to "
        "generate one into the data folder"
    )


# Below this many distinct byte values a 32-byte key is refused: 32 random bytes have fewer with a
# chance under 2**-75 (about 30 on average).
KEK_MIN_DISTINCT_BYTES: Final = 12
# A key that repeats itself every this many bytes or fewer is refused (chance 2**-128 or less).
KEK_MAX_PERIOD: Final = 16


def _refuse_weak_kek(kek: bytes, source: str) -> None:
    """Refuse a key-encryption key no random generator makes: all one byte, a short pattern
    repeated, a counting sequence.

    Each rule fails 32 random bytes with a chance below 2**-75, so a key from ``openssl rand`` or
    ``secrets.token_bytes`` always passes; what fails was typed, copied from an example, or left
    zeroed. The message says which rule, never the key.
    """
    problem = _kek_weakness(kek)
    if problem is not None:
        raise ConfigError(
            f"{source}: the key-encryption key is not random ({problem}); make one from 32 "
            "random bytes, e.g. `openssl rand -hex 32`"
        )


def _kek_weakness(kek: bytes) -> str | None:
    if len(set(kek)) < KEK_MIN_DISTINCT_BYTES:
        return f"fewer than {KEK_MIN_DISTINCT_BYTES} distinct byte values"
    for period in range(1, KEK_MAX_PERIOD + 1):
        if kek[period:] == kek[:-period]:
            return f"a pattern of {period} bytes, repeated"
    steps = {(after - before) % 256 for before, after in pairwise(kek)}
    if len(steps) == 1:
        return "each byte a constant step from the one before"
    return None


def _read_kek_file(path: Path, source: str) -> bytes:
    """A KEK file holds either exactly 32 raw bytes or the key as base64url or hex text."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{source}: cannot read the key-encryption key file {path}: {exc.strerror}"
        ) from exc
    if len(data) == KEK_BYTES:
        return data
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{source}: {path} holds neither 32 raw bytes nor base64url or hex text"
        ) from exc
    return _parse_kek_text(text, f"{source} ({path})")


def _parse_kek_text(text: str, source: str) -> bytes:
    """Hex (64 digits) or base64url, padded or not (standard base64 is accepted too)."""
    value = text.strip()
    if _HEX_KEK.fullmatch(value):
        return bytes.fromhex(value)
    unpadded = value.rstrip("=").replace("+", "-").replace("/", "_")
    if not _B64URL.fullmatch(unpadded):
        raise ConfigError(f"{source}: the key-encryption key must be base64url or hex text")
    try:
        raw = base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"{source}: the key-encryption key is not valid base64url") from exc
    if len(raw) != KEK_BYTES:
        raise ConfigError(
            f"{source}: the key-encryption key must be {KEK_BYTES} bytes, got {len(raw)}"
        )
    return raw


def _development_kek(path: Path) -> bytes:
    """Reuse ``path``, or create it (mode 0600) without racing another process starting too."""
    if not path.exists():
        private_dir(path.parent)
        _create_kek_file(path)
    return _read_kek_file(path, "the development key-encryption key")


def _create_kek_file(path: Path) -> None:
    """Write to a private temporary file, then hard-link it into place: the link fails if another
    process created the key first (we then use theirs), and nobody ever reads a half-written key.
    """
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".kek-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(_b64url(secrets.token_bytes(KEK_BYTES)) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp_name, path)
        except FileExistsError:
            return
        logger.warning(
            "generated a development key-encryption key in %s; set GATEPASS_AUTH_KEK_FILE in "
            "production",
            path,
        )
    finally:
        os.unlink(tmp_name)


# --- JWK, thumbprint, private-key sealing ------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint_bytes(value: int) -> bytes:
    """Big-endian without leading zeros (RFC 7518 §6.3.1: RSA members are not zero-padded)."""
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def public_jwk(public_key: PublicKey) -> dict[str, str]:
    """The public members of ``public_key`` as a JWK (no kid, alg or use)."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, ec.SECP256R1):
            raise ValueError(f"unsupported curve {public_key.curve.name}")
        numbers = public_key.public_numbers()
        # RFC 7518 §6.2.1.2: coordinates are the full size of the curve (32 bytes for P-256).
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64url(numbers.x.to_bytes(32, "big")),
            "y": _b64url(numbers.y.to_bytes(32, "big")),
        }
    if isinstance(public_key, rsa.RSAPublicKey):
        rsa_numbers = public_key.public_numbers()
        return {
            "kty": "RSA",
            "n": _b64url(_uint_bytes(rsa_numbers.n)),
            "e": _b64url(_uint_bytes(rsa_numbers.e)),
        }
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw)}


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 thumbprint: SHA-256 of the required members in lexicographic order, no spaces."""
    members = _THUMBPRINT_MEMBERS[str(jwk["kty"])]
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"))
    return _b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def _generate_private_key(alg: str) -> PrivateKey:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported signing algorithm {alg!r}")


def _fits_alg(key: object, alg: str) -> bool:
    """Whether ``key`` is the key type ``alg`` signs with (a row's alg and key must agree)."""
    if alg == "ES256":
        return isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
    if alg == "RS256":
        return isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048
    return alg == "EdDSA" and isinstance(key, ed25519.Ed25519PrivateKey)


def _seal(kek: bytes, kid: str, private_key: PrivateKey) -> bytes:
    """PKCS#8 DER under AES-256-GCM; the kid is associated data, so a sealed key cannot be moved
    to another row. Layout: 12-byte nonce, then ciphertext and tag.
    """
    der = private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + AESGCM(kek).encrypt(nonce, der, kid.encode("utf-8"))


def _unseal(kek: bytes, kid: str, alg: str, sealed: bytes) -> PrivateKey:
    try:
        der = AESGCM(kek).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], kid.encode("utf-8"))
    except (InvalidTag, ValueError) as exc:
        raise ConfigError(
            f"the key-encryption key does not match the signing keys in the database (key {kid} "
            "cannot be decrypted); start with the key-encryption key that sealed them"
        ) from exc
    key = serialization.load_der_private_key(der, password=None)
    if not isinstance(
        key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    ) or not _fits_alg(key, alg):
        raise ConfigError(f"signing key {kid} in the database is not a valid {alg} key")
    return key


def _unseal_all(kek: bytes, sealed: Iterable[tuple[str, str, bytes]]) -> dict[str, PrivateKey]:
    return {kid: _unseal(kek, kid, alg, blob) for kid, alg, blob in sealed}


@dataclass(frozen=True)
class _NewKey:
    """A freshly generated key, ready to insert: made outside any transaction when possible."""

    kid: str
    alg: str
    jwk: dict[str, str]
    sealed: bytes


def _new_key(kek: bytes, alg: str) -> _NewKey:
    """Generate, name (RFC 7638 thumbprint) and seal a key. CPU-bound: run it in a thread."""
    private_key = _generate_private_key(alg)
    jwk = public_jwk(private_key.public_key())
    kid = jwk_thumbprint(jwk)
    published = {**jwk, "kid": kid, "alg": alg, "use": "sig"}
    return _NewKey(kid=kid, alg=alg, jwk=published, sealed=_seal(kek, kid, private_key))


# --- JWKS document -----------------------------------------------------------------------------


def _publish_order(row: SigningKey) -> tuple[int, float, str]:
    """Active first, then next, then retired; newest first within a state; kid breaks ties.
    Deterministic, so every replica serves the same bytes under the same ETag.
    """
    since = row.activated_at if row.state == ACTIVE and row.activated_at else row.created_at
    return (_STATE_ORDER.get(row.state, len(_STATE_ORDER)), -since.timestamp(), row.kid)


def _published_jwk(row: SigningKey) -> dict[str, str]:
    """Only the public members (an allow-list, whatever the stored JSON holds), plus kid/alg/use."""
    stored = row.public_jwk
    members = _THUMBPRINT_MEMBERS[str(stored["kty"])]
    return {
        **{name: str(stored[name]) for name in members},
        "kid": row.kid,
        "alg": row.alg,
        "use": "sig",
    }


def _jwks_document(ordered: Sequence[SigningKey]) -> JwksDocument:
    body = json.dumps(
        {"keys": [_published_jwk(row) for row in ordered]}, separators=(",", ":"), sort_keys=True
    ).encode("utf-8")
    return JwksDocument(body=body, etag=f'"{_b64url(hashlib.sha256(body).digest())}"')


# --- scheduling --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Schedule:
    """The timing rules, read from the settings once."""

    alg: str
    lead: timedelta  # a new key is published at least this long before it signs
    interval: timedelta  # a key signs for about this long
    expiry: timedelta  # how long tokens outlive the key's last signature

    @classmethod
    def from_settings(cls, settings: Settings) -> _Schedule:
        return cls(
            alg=settings.signing_alg,
            lead=timedelta(seconds=settings.key_publish_lead),
            interval=timedelta(seconds=settings.key_rotation_interval),
            expiry=timedelta(seconds=settings.access_token_ttl + EXPIRY_LEEWAY),
        )


@dataclass(frozen=True)
class _NewKeyPlan:
    alg: str
    promote_after: datetime | None  # None: active at once (there is nothing else to sign with)


@dataclass(frozen=True)
class _Plan:
    """What maintain() should do, decided from the key rows alone (pure: easy to reason about)."""

    delete: tuple[str, ...] = ()
    retire: tuple[str, ...] = ()
    promote: str | None = None
    create: _NewKeyPlan | None = None

    def is_empty(self) -> bool:
        return not (self.delete or self.retire or self.promote or self.create)


def _activated(row: SigningKey) -> datetime:
    return row.activated_at or row.created_at


def _actives(rows: Iterable[SigningKey]) -> list[SigningKey]:
    """Active keys, the one that signs (latest activation) first."""
    return sorted((r for r in rows if r.state == ACTIVE), key=_activated, reverse=True)


def _nexts(rows: Iterable[SigningKey]) -> list[SigningKey]:
    """Next keys, the first to promote first."""
    return sorted(
        (r for r in rows if r.state == NEXT), key=lambda r: (r.promote_after or r.created_at, r.kid)
    )


def _expired(row: SigningKey, now: datetime, expiry: timedelta) -> bool:
    """A retired or revoked key can go once every token it signed has expired."""
    since = {RETIRED: row.retired_at, REVOKED: row.revoked_at}.get(row.state)
    return since is not None and since + expiry < now


def _plan(rows: Sequence[SigningKey], now: datetime, schedule: _Schedule) -> _Plan:
    delete = tuple(row.kid for row in rows if _expired(row, now, schedule.expiry))
    actives, nexts = _actives(rows), _nexts(rows)
    active = actives[0] if actives else None
    retire = tuple(row.kid for row in actives[1:])  # only after a crash between two writes
    first_next = nexts[0] if nexts else None
    if first_next is not None and (
        active is None or first_next.promote_after is None or first_next.promote_after <= now
    ):
        # Without an active key, promote a published key at once: better than not signing.
        retire += (active.kid,) if active is not None else ()
        create = _next_key_plan(schedule, now, first_next.alg, now, has_next=len(nexts) > 1)
        return _Plan(delete, retire, first_next.kid, create)
    if active is None:
        return _Plan(delete, retire, None, _NewKeyPlan(schedule.alg, None))
    create = _next_key_plan(schedule, now, active.alg, _activated(active), has_next=bool(nexts))
    return _Plan(delete, retire, None, create)


def _next_key_plan(
    schedule: _Schedule, now: datetime, alg: str, activated_at: datetime, *, has_next: bool
) -> _NewKeyPlan | None:
    """Publish the successor one lead before the active key's interval ends, or at once (to sign
    one lead later) when the operator changed the algorithm.
    """
    if has_next:
        return None
    if now - activated_at >= schedule.interval - schedule.lead:
        promote_after = max(activated_at + schedule.interval, now + schedule.lead)
        return _NewKeyPlan(schedule.alg, promote_after)
    if alg != schedule.alg:
        return _NewKeyPlan(schedule.alg, now + schedule.lead)
    return None


def _retire(row: SigningKey, now: datetime) -> None:
    row.state = RETIRED
    row.retired_at = now


def _activate(row: SigningKey, now: datetime) -> None:
    row.state = ACTIVE
    row.activated_at = now
    row.promote_after = None


# --- the manager -------------------------------------------------------------------------------


@dataclass
class _Outcome:
    """What one locked job did: the kid it chose, log lines, promotions to count once committed."""

    kid: str | None = None
    actions: list[str] = field(default_factory=list)
    promotions: int = 0


_Job: TypeAlias = Callable[[AsyncSession, list[SigningKey], datetime], Awaitable[_Outcome]]


@dataclass(frozen=True)
class _Snapshot:
    loaded_at: datetime
    active: SigningMaterial | None
    active_since: datetime | None
    public: Mapping[str, tuple[str, PublicKey]]
    jwks: JwksDocument


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
        self._schedule = _Schedule.from_settings(settings)
        self._snapshot_max_age = min(SNAPSHOT_MAX_AGE, settings.key_check_interval)
        self._holder = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"
        self._snapshot: _Snapshot | None = None
        self._private: dict[str, PrivateKey] = {}
        self._reload_lock = asyncio.Lock()

    # -- life cycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """First boot makes a key active at once (nobody can have cached a JWKS yet); every boot
        then catches up on the schedule and loads the snapshot, which also checks the KEK.
        """
        await self.maintain()
        await self._refresh(force=True)

    async def maintain(self) -> list[str]:
        """The scheduled job: remove expired keys, promote a due key, publish a successor.

        The rows are first read without the lock, so the common case (nothing to do) writes
        nothing, and so a new key (slow for RSA) is generated before the lock is taken.
        """
        plan = _plan(await self._read_rows(), self._clock(), self._schedule)
        if plan.is_empty():
            await self._current()  # keeps the snapshot and the key-age gauge fresh
            return []
        spare = await self._generate(plan.create.alg) if plan.create else None
        outcome = await self._locked(partial(self._apply_plan, spare=spare))
        return outcome.actions

    async def rotate(self, *, immediately: bool = False) -> str:
        """Forced rotation. By default the next key signs one publish lead after it was published
        (the scheduled job promotes it then). With ``immediately`` a new, unpublished key signs at
        once: edges that do not hold it yet fetch the JWKS on the unknown kid.
        """
        rows = await self._read_rows()
        needs_key = immediately or not _nexts(rows)
        spare = await self._generate(self._schedule.alg) if needs_key else None
        job = self._rotate_now if immediately else self._schedule_rotation
        outcome = await self._locked(partial(job, spare=spare))
        if outcome.kid is None:  # pragma: no cover - both jobs always name a key
            raise KeyManagerError("rotation chose no key")
        return outcome.kid

    async def revoke(self, kid: str) -> None:
        """Emergency: the key leaves the JWKS at once and the edges learn it from the feed. If it
        was signing, another key signs at once (a published next key if there is one).
        """
        rows = await self._read_rows()
        target = next((row for row in rows if row.kid == kid), None)
        if target is None:
            raise KeyNotFoundError(kid)
        needs_key = target.state == ACTIVE and not _nexts(rows)
        spare = await self._generate(self._schedule.alg) if needs_key else None
        await self._locked(partial(self._revoke, kid=kid, spare=spare))

    async def run_forever(self) -> None:
        """maintain() every key_check_interval (±10 % so replicas spread out). A failure is
        logged and retried next tick; cancellation ends the loop.
        """
        while True:
            await asyncio.sleep(self._next_tick())
            try:
                await self.maintain()
            except _TRANSIENT_ERRORS as exc:
                logger.warning(
                    "signing-key maintenance failed; retrying next tick: %s", _error_summary(exc)
                )
            except ConfigError as exc:
                # Another replica sealed a key under a different KEK: say so every tick.
                logger.error("signing-key maintenance failed: %s", exc)

    def _next_tick(self) -> float:
        jitter = random.uniform(0.9, 1.1)  # noqa: S311 - spreading replicas, not security
        return self._settings.key_check_interval * jitter

    # -- readers ---------------------------------------------------------------------------------

    async def signing_key(self) -> SigningMaterial:
        snapshot = await self._current()
        if snapshot.active is None:
            raise NoActiveKeyError("no active signing key")
        return snapshot.active

    async def verification_key(self, kid: str) -> tuple[str, PublicKey] | None:
        """(alg, public key) of a published key, for verifying our own tokens; None otherwise."""
        return (await self._current()).public.get(kid)

    async def jwks(self) -> JwksDocument:
        return (await self._current()).jwks

    async def list_keys(self) -> list[KeyInfo]:
        rows = sorted(await self._read_rows(), key=lambda row: (row.created_at, row.kid))
        return [
            KeyInfo(
                kid=row.kid,
                alg=row.alg,
                state=row.state,
                created_at=row.created_at,
                promote_after=row.promote_after,
                activated_at=row.activated_at,
                retired_at=row.retired_at,
                revoked_at=row.revoked_at,
            )
            for row in rows
        ]

    def key_age_seconds(self) -> float | None:
        snapshot = self._snapshot
        if snapshot is None or snapshot.active_since is None:
            return None
        age = max(0.0, (self._clock() - snapshot.active_since).total_seconds())
        self._metrics.key_age.set(age)
        return age

    def has_active_key(self) -> bool:
        return self._snapshot is not None and self._snapshot.active is not None

    # -- locked jobs -----------------------------------------------------------------------------

    async def _locked(self, job: _Job) -> _Outcome:
        """Run ``job`` in one transaction holding the key-rotation lock, on freshly read rows."""
        async with self._sessions() as session, session.begin():
            await self._take_lock(session)
            rows = list((await session.scalars(select(SigningKey))).all())
            outcome = await job(session, rows, self._clock())
        if outcome.promotions:
            self._metrics.key_rotations.inc(outcome.promotions)
        for action in outcome.actions:
            logger.info("signing keys: %s", action)
        await self._refresh(force=True)
        return outcome

    async def _take_lock(self, session: AsyncSession) -> None:
        """The first statement of the transaction: a row lock (PostgreSQL) or the write lock
        (SQLite) that the other replicas wait on.
        """
        stmt = (
            update(Lock)
            .where(Lock.name == LOCK_NAME)
            .values(holder=self._holder, taken_at=self._clock())
        )
        result = cast("CursorResult[Any]", await session.execute(stmt))
        if result.rowcount == 0:
            # The migration inserts the row; a schema made another way may lack it.
            await session.execute(_insert_lock_row(session))
            await session.execute(stmt)

    async def _apply_plan(
        self, session: AsyncSession, rows: list[SigningKey], now: datetime, *, spare: _NewKey | None
    ) -> _Outcome:
        plan = _plan(rows, now, self._schedule)
        by_kid = {row.kid: row for row in rows}
        outcome = _Outcome()
        for kid in plan.delete:
            outcome.actions.append(f"removed {by_kid[kid].state} {kid}")
            await session.delete(by_kid[kid])
        for kid in plan.retire:
            _retire(by_kid[kid], now)
            outcome.actions.append(f"retired {kid}")
        if plan.promote is not None:
            _activate(by_kid[plan.promote], now)
            outcome.actions.append(f"promoted {plan.promote}")
            outcome.promotions += 1
        if plan.create is not None:
            row = await self._add_key(session, plan.create, now, spare)
            outcome.actions.append(_created(row))
        return outcome

    async def _schedule_rotation(
        self, session: AsyncSession, rows: list[SigningKey], now: datetime, *, spare: _NewKey | None
    ) -> _Outcome:
        """Bring the next key forward (never to less than one lead after it was published), or
        publish one to sign one lead from now.
        """
        nexts = _nexts(rows)
        if nexts:
            row = nexts[0]
            earliest = max(row.created_at + self._schedule.lead, now)
            if row.promote_after is not None and row.promote_after < earliest:
                earliest = row.promote_after  # already due: never delay it
            row.promote_after = earliest
            action = f"next key {row.kid} signs from {earliest.isoformat()}"
            return _Outcome(kid=row.kid, actions=[action])
        plan = _NewKeyPlan(self._schedule.alg, now + self._schedule.lead)
        row = await self._add_key(session, plan, now, spare)
        return _Outcome(kid=row.kid, actions=[_created(row)])

    async def _rotate_now(
        self, session: AsyncSession, rows: list[SigningKey], now: datetime, *, spare: _NewKey | None
    ) -> _Outcome:
        outcome = _Outcome(promotions=1)
        for row in _actives(rows):
            _retire(row, now)
            outcome.actions.append(f"retired {row.kid}")
        new = await self._add_key(session, _NewKeyPlan(self._schedule.alg, None), now, spare)
        outcome.kid = new.kid
        outcome.actions.append(f"{_created(new)} (forced, unpublished before)")
        return outcome

    async def _revoke(
        self,
        session: AsyncSession,
        rows: list[SigningKey],
        now: datetime,
        *,
        kid: str,
        spare: _NewKey | None,
    ) -> _Outcome:
        target = next((row for row in rows if row.kid == kid), None)
        if target is None:
            raise KeyNotFoundError(kid)
        if target.state == REVOKED:
            return _Outcome(kid=kid)  # already done: no second feed entry
        previous = target.state
        target.state = REVOKED
        target.revoked_at = now
        outcome = _Outcome(kid=kid, actions=[f"revoked {previous} key {kid}"])
        replacement = None
        if previous == ACTIVE and not _actives(rows):
            replacement = await self._replace_active(session, rows, now, spare, outcome)
        self._record_revocation(session, kid, previous, replacement, now)
        return outcome

    async def _replace_active(
        self,
        session: AsyncSession,
        rows: list[SigningKey],
        now: datetime,
        spare: _NewKey | None,
        outcome: _Outcome,
    ) -> str:
        """A published next key if there is one (edges already hold it), else a new key."""
        nexts = _nexts(rows)
        if nexts:
            _activate(nexts[0], now)
            outcome.actions.append(f"promoted {nexts[0].kid}")
            outcome.promotions += 1
            return nexts[0].kid
        row = await self._add_key(session, _NewKeyPlan(self._schedule.alg, None), now, spare)
        outcome.actions.append(_created(row))
        outcome.promotions += 1
        return row.kid

    def _record_revocation(
        self, session: AsyncSession, kid: str, previous: str, replacement: str | None, now: datetime
    ) -> None:
        """The feed entry lives as long as any token the key signed: access TTL plus leeway."""
        session.add(
            RevocationEvent(
                kind="key",
                value=kid,
                not_before=None,
                created_at=now,
                expires_at=now + self._schedule.expiry,
            )
        )
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
        self, session: AsyncSession, plan: _NewKeyPlan, now: datetime, spare: _NewKey | None
    ) -> SigningKey:
        """Insert a key, using the one generated before the lock if it has the right algorithm."""
        new = (
            spare if spare is not None and spare.alg == plan.alg else await self._generate(plan.alg)
        )
        row = SigningKey(
            kid=new.kid,
            alg=new.alg,
            state=ACTIVE if plan.promote_after is None else NEXT,
            public_jwk=new.jwk,
            private_key_enc=new.sealed,
            created_at=now,
            promote_after=plan.promote_after,
            activated_at=now if plan.promote_after is None else None,
            retired_at=None,
            revoked_at=None,
        )
        session.add(row)
        return row

    async def _generate(self, alg: str) -> _NewKey:
        return await asyncio.to_thread(_new_key, self._kek, alg)

    async def _read_rows(self) -> list[SigningKey]:
        async with self._sessions() as session:
            return list((await session.scalars(select(SigningKey))).all())

    # -- snapshot --------------------------------------------------------------------------------

    async def _current(self) -> _Snapshot:
        snapshot = self._snapshot
        if snapshot is not None and self._is_fresh(snapshot):
            return snapshot
        return await self._refresh(force=False)

    def _is_fresh(self, snapshot: _Snapshot) -> bool:
        age = (self._clock() - snapshot.loaded_at).total_seconds()
        return 0 <= age < self._snapshot_max_age  # a clock stepping back also reloads

    async def _refresh(self, *, force: bool) -> _Snapshot:
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

    async def _load_snapshot(self) -> _Snapshot:
        async with self._sessions() as session:
            result = await session.scalars(
                select(SigningKey).where(SigningKey.state.in_(PUBLISHED_STATES))
            )
            rows = sorted(result.all(), key=_publish_order)
        await self._unseal_missing(rows)
        actives = [row for row in rows if row.state == ACTIVE]
        active = actives[0] if actives else None
        snapshot = _Snapshot(
            loaded_at=self._clock(),
            active=(
                SigningMaterial(active.kid, active.alg, self._private[active.kid])
                if active is not None
                else None
            ),
            active_since=_activated(active) if active is not None else None,
            public={row.kid: (row.alg, self._private[row.kid].public_key()) for row in rows},
            jwks=_jwks_document(rows),
        )
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
            self._private.update(await asyncio.to_thread(_unseal_all, self._kek, missing))
        published = {row.kid for row in rows}
        self._private = {kid: key for kid, key in self._private.items() if kid in published}


def _created(row: SigningKey) -> str:
    if row.state == ACTIVE:
        return f"created active key {row.kid} ({row.alg})"
    when = row.promote_after.isoformat() if row.promote_after else "?"
    return f"created next key {row.kid} ({row.alg}, signs from {when})"


def _error_summary(exc: BaseException) -> str:
    """The driver's message, never SQLAlchemy's rendering of the statement and its parameters
    (which would put sealed key bytes in a log line).
    """
    if isinstance(exc, DBAPIError):
        return f"{type(exc.orig).__name__}: {exc.orig}"
    if isinstance(exc, SQLAlchemyError):
        return type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


def _insert_lock_row(session: AsyncSession) -> Insert:
    """Insert the lock row unless another replica just did (ON CONFLICT DO NOTHING)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(Lock).values(name=LOCK_NAME).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(Lock).values(name=LOCK_NAME).on_conflict_do_nothing()
    return sql_insert(Lock).values(name=LOCK_NAME)

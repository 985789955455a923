"""The signing-key life cycle, against a real SQLite database and a clock the tests move.

Each purpose (access tokens, ID tokens) runs the life cycle on its own keys; these tests follow
the access-token keys (``test_key_purposes.py`` checks that the purposes stay apart), so the
helpers below look at those keys only.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from fastapi import FastAPI
from jwt.algorithms import get_default_algorithms
from jwt.utils import base64url_decode
from pydantic import SecretStr
from sqlalchemy import delete, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from auth_service import migrate
from auth_service.config import ConfigError, Settings
from auth_service.keys import (
    ACCESS,
    JwksDocument,
    KeyManager,
    KeyNotFoundError,
    NoActiveKeyError,
    jwk_thumbprint,
    load_kek,
    sign_jwt,
)
from auth_service.keys.manager import KeyInfo
from auth_service.metrics import Metrics
from auth_service.models import Lock, RevocationEvent, SecurityEvent, SigningKey
from auth_service.routes.jwks import router as jwks_router
from gatepass.db import create_engine, create_sessionmaker

KEK = bytes(range(32))
OTHER_KEK = bytes(range(1, 33))
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
T0 = datetime(2030, 1, 1, tzinfo=UTC)

# Test timing: lead = 600 + 60 = 660 s; a key signs for 3600 s; retired keys live 300 + 60 s.
JWKS_MAX_AGE = 600
LEAD = timedelta(seconds=JWKS_MAX_AGE + 60)
INTERVAL = timedelta(seconds=3600)
EXPIRY = timedelta(seconds=300 + 60)


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta | float) -> None:
        self.now += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "development",
        "data_dir": tmp_path,
        "jwks_max_age": JWKS_MAX_AGE,
        "key_rotation_interval": int(INTERVAL.total_seconds()),
        "access_token_ttl": 300,
        "key_check_interval": 60.0,
        "signing_alg": "ES256",
    }
    values.update(overrides)
    return Settings(**values)


class Replicas:
    """Key managers on one SQLite file, each with its own engine: separate replicas."""

    def __init__(self, tmp_path: Path, clock: FakeClock) -> None:
        self.tmp_path = tmp_path
        self.clock = clock
        self.url = f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}"
        self.engines: list[AsyncEngine] = []

    async def manager(
        self, *, kek: bytes = KEK, metrics: Metrics | None = None, **overrides: Any
    ) -> KeyManager:
        engine = create_engine(self.url)
        if not self.engines:
            await migrate.upgrade(engine)
        self.engines.append(engine)
        settings = make_settings(self.tmp_path, **overrides)
        return KeyManager(
            settings, create_sessionmaker(engine), kek, self.clock, metrics or Metrics()
        )

    async def started(self, **kwargs: Any) -> KeyManager:
        manager = await self.manager(**kwargs)
        await manager.start()
        return manager

    async def rows(self, purpose: str = ACCESS) -> list[SigningKey]:
        async with create_sessionmaker(self.engines[0])() as session:
            query = select(SigningKey).where(SigningKey.purpose == purpose)
            return list((await session.scalars(query)).all())

    async def states(self) -> dict[str, str]:
        return {row.kid: row.state for row in await self.rows()}

    async def close(self) -> None:
        for engine in self.engines:
            await engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def replicas(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Replicas]:
    env = Replicas(tmp_path, clock)
    try:
        yield env
    finally:
        await env.close()


def jwks_keys(document: JwksDocument) -> list[dict[str, Any]]:
    keys: list[dict[str, Any]] = json.loads(document.body)["keys"]
    return keys


async def access_keys(manager: KeyManager) -> list[KeyInfo]:
    return [key for key in await manager.list_keys() if key.purpose == ACCESS]


async def published(manager: KeyManager) -> list[str]:
    """The access-token keys the JWKS publishes, in its order."""
    ours = {key.kid for key in await access_keys(manager)}
    return [key["kid"] for key in jwks_keys(await manager.jwks()) if key["kid"] in ours]


async def maintain(manager: KeyManager) -> list[str]:
    """The scheduled job's actions on the access-token keys (the ID-token keys, made at the same
    time with the same interval, change alongside)."""
    others = {key.kid for key in await manager.list_keys() if key.purpose != ACCESS}
    actions = await manager.maintain()
    others |= {key.kid for key in await manager.list_keys() if key.purpose != ACCESS}
    return [action for action in actions if not any(kid in action for kid in others)]


def rotations(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("gatepass_auth_key_rotations_total") or 0.0


def independent_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 §3, written out again so the test does not trust the code under test."""
    required = {
        "EC": ["crv", "kty", "x", "y"],
        "RSA": ["e", "kty", "n"],
        "OKP": ["crv", "kty", "x"],
    }
    members = ",".join(f'"{name}":"{jwk[name]}"' for name in required[jwk["kty"]])
    digest = hashlib.sha256(("{" + members + "}").encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# --- first boot, restarts, the JWKS -------------------------------------------------------------


async def test_first_boot_creates_one_active_key(replicas: Replicas) -> None:
    metrics = Metrics()
    manager = await replicas.started(metrics=metrics)

    keys = await access_keys(manager)
    assert [key.state for key in keys] == ["active"]
    assert keys[0].activated_at == replicas.clock.now
    assert manager.has_active_key()
    assert (await manager.signing_key()).kid == keys[0].kid
    assert await published(manager) == [keys[0].kid]
    assert manager.key_age_seconds() == 0.0
    assert metrics.registry.get_sample_value("gatepass_auth_jwks_keys") == 2.0  # and an ID key
    assert rotations(metrics) == 0.0  # a first key is not a rotation

    replicas.clock.advance(100)
    assert manager.key_age_seconds() == 100.0

    # A restart (a new manager on the same database) keeps the key: nobody is logged out.
    again = await replicas.started()
    assert (await again.signing_key()).kid == keys[0].kid
    assert len(await replicas.rows()) == 1


async def test_not_started_manager_has_no_key(replicas: Replicas) -> None:
    manager = await replicas.manager()
    assert not manager.has_active_key()
    assert manager.key_age_seconds() is None
    with pytest.raises(NoActiveKeyError):
        await manager.signing_key()


@pytest.mark.parametrize(
    ("alg", "kty", "crv", "key_type"),
    [
        ("ES256", "EC", "P-256", ec.EllipticCurvePrivateKey),
        ("RS256", "RSA", None, rsa.RSAPrivateKey),
        ("Ed25519", "OKP", "Ed25519", ed25519.Ed25519PrivateKey),
    ],
)
async def test_jwks_carries_public_parameters_only(
    replicas: Replicas, alg: str, kty: str, crv: str | None, key_type: type
) -> None:
    manager = await replicas.started(signing_alg=alg)
    await manager.rotate()  # a next key too: every published state is checked

    ours = await published(manager)
    keys = [key for key in jwks_keys(await manager.jwks()) if key["kid"] in ours]
    assert len(keys) == 2
    for jwk in keys:
        assert not PRIVATE_MEMBERS & jwk.keys()
        assert jwk["kty"] == kty
        assert jwk.get("crv") == crv
        assert (jwk["alg"], jwk["use"]) == (alg, "sig")
        assert jwk["kid"] == independent_thumbprint(jwk)
        assert jwk["kid"] == jwk_thumbprint(jwk)

    # The published key verifies what the signing key signs, through PyJWT's own JWK parser and
    # algorithm (which knows Ed25519 by its older name only, RFC 9864: the same signature).
    material = await manager.signing_key()
    assert isinstance(material.private_key, key_type)
    assert material.alg == alg
    token = sign_jwt(material, {"sub": "u1"}, typ="JWT")
    assert jwt.get_unverified_header(token) == {"alg": alg, "kid": material.kid, "typ": "JWT"}
    signing_input, _, signature = token.encode().rpartition(b".")
    pyjwt_alg = get_default_algorithms()["EdDSA" if alg == "Ed25519" else alg]
    jwk = next(key for key in keys if key["kid"] == material.kid)
    public = pyjwt_alg.from_jwk(jwk)
    assert pyjwt_alg.verify(signing_input, public, base64url_decode(signature))

    found = await manager.verification_key(material.kid)
    assert found is not None
    assert found[0] == alg
    assert pyjwt_alg.verify(signing_input, found[1], base64url_decode(signature))


def test_thumbprint_matches_the_rfc7638_example() -> None:
    jwk = {
        "kty": "RSA",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJE"
            "CPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2"
            "QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQF"
            "h6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        ),
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


async def test_jwks_is_the_same_document_on_every_replica(replicas: Replicas) -> None:
    first = await replicas.started()
    await first.rotate()
    second = await replicas.started()
    assert await first.jwks() == await second.jwks()
    document = await first.jwks()
    digest = base64.urlsafe_b64encode(hashlib.sha256(document.body).digest()).rstrip(b"=")
    assert document.etag == f'"{digest.decode()}"'
    assert b" " not in document.body


async def test_private_keys_are_sealed_under_the_kek_bound_to_the_kid(replicas: Replicas) -> None:
    await replicas.started()
    (row,) = await replicas.rows()
    assert b"PRIVATE" not in row.private_key_enc
    assert not PRIVATE_MEMBERS & row.public_jwk.keys()

    # A sealed key copied onto another row (another kid) does not decrypt there.
    other = await replicas.manager()
    async with create_sessionmaker(replicas.engines[0])() as session, session.begin():
        session.add(
            SigningKey(
                kid="moved",
                alg=row.alg,
                state="next",
                public_jwk=row.public_jwk,
                private_key_enc=row.private_key_enc,
                created_at=replicas.clock.now,
                promote_after=replicas.clock.now + LEAD,
            )
        )
    with pytest.raises(ConfigError, match="does not match"):
        await other.start()


# --- scheduled rotation -------------------------------------------------------------------------


async def test_scheduled_rotation_publishes_the_next_key_a_lead_before_it_signs(
    replicas: Replicas,
) -> None:
    clock = replicas.clock
    metrics = Metrics()
    manager = await replicas.started(metrics=metrics)
    old = (await manager.signing_key()).kid

    clock.advance(INTERVAL - LEAD - timedelta(seconds=1))
    assert await maintain(manager) == []

    clock.advance(1)
    actions = await maintain(manager)
    assert len(actions) == 1
    assert actions[0].startswith("created next key")
    new = next(kid for kid, state in (await replicas.states()).items() if state == "next")
    published_at = clock.now
    (info,) = [key for key in await access_keys(manager) if key.kid == new]
    assert info.promote_after is not None
    assert info.promote_after - published_at >= LEAD
    assert info.promote_after == T0 + INTERVAL

    # Walk the clock through the lead: published, but the old key still signs.
    while clock.now + timedelta(seconds=60) < info.promote_after:
        clock.advance(60)
        assert await maintain(manager) == []
        assert await published(manager) == [old, new]
        assert (await manager.signing_key()).kid == old
    clock.now = info.promote_after - timedelta(microseconds=1)
    await maintain(manager)
    assert (await manager.signing_key()).kid == old

    clock.now = info.promote_after
    assert await maintain(manager) == [f"retired {old}", f"promoted {new}"]
    assert (await manager.signing_key()).kid == new
    assert (await manager.signing_key()).kid == new
    assert await published(manager) == [new, old]  # active first, the retired key still there
    assert rotations(metrics) == 2.0  # this one, and the ID-token key's on the same schedule
    assert manager.key_age_seconds() == 0.0


async def test_retired_key_stays_published_until_its_tokens_expired(replicas: Replicas) -> None:
    clock = replicas.clock
    manager = await replicas.started()
    old = (await manager.signing_key()).kid
    new = await manager.rotate(immediately=True)
    retired_at = clock.now

    clock.now = retired_at + EXPIRY
    assert await maintain(manager) == []
    assert await published(manager) == [new, old]
    assert await manager.verification_key(old) is not None

    clock.advance(1)
    assert await maintain(manager) == [f"removed retired {old}"]
    assert await published(manager) == [new]
    assert await manager.verification_key(old) is None
    assert set(await replicas.states()) == {new}


async def test_forced_rotation_publishes_first(replicas: Replicas) -> None:
    clock = replicas.clock
    manager = await replicas.started()
    old = (await manager.signing_key()).kid

    new = await manager.rotate()
    assert new != old
    assert await published(manager) == [old, new]
    assert (await manager.signing_key()).kid == old
    (info,) = [key for key in await manager.list_keys() if key.kid == new]
    assert info.state == "next"
    assert info.promote_after == clock.now + LEAD

    # Rotating again does not make another key, nor bring the date before one lead.
    clock.advance(10)
    assert await manager.rotate() == new
    (info,) = [key for key in await manager.list_keys() if key.kid == new]
    assert info.promote_after == info.created_at + LEAD

    clock.now = info.created_at + LEAD - timedelta(seconds=1)
    assert await maintain(manager) == []
    clock.advance(1)
    assert f"promoted {new}" in await maintain(manager)
    assert (await manager.signing_key()).kid == new


async def test_forced_rotation_brings_the_next_key_forward_but_not_before_a_lead(
    replicas: Replicas,
) -> None:
    clock = replicas.clock
    manager = await replicas.started()
    clock.advance(INTERVAL - LEAD)
    await maintain(manager)  # publishes the scheduled successor
    (nxt,) = [key for key in await access_keys(manager) if key.state == "next"]
    async with create_sessionmaker(replicas.engines[0])() as session, session.begin():
        row = await session.get(SigningKey, nxt.kid)
        assert row is not None
        row.promote_after = clock.now + timedelta(days=10)  # say, a longer interval meanwhile

    clock.advance(LEAD / 2)
    assert await manager.rotate() == nxt.kid
    (info,) = [key for key in await manager.list_keys() if key.kid == nxt.kid]
    assert info.promote_after == nxt.created_at + LEAD  # brought forward, to one lead after publish
    assert await maintain(manager) == []

    clock.advance(LEAD)  # rotating a key that is already due never delays it
    assert await manager.rotate() == nxt.kid
    (info,) = [key for key in await manager.list_keys() if key.kid == nxt.kid]
    assert info.promote_after == nxt.created_at + LEAD
    assert f"promoted {nxt.kid}" in await maintain(manager)


async def test_rotate_immediately_signs_at_once(replicas: Replicas) -> None:
    metrics = Metrics()
    manager = await replicas.started(metrics=metrics)
    old = (await manager.signing_key()).kid

    new = await manager.rotate(immediately=True)
    assert new != old
    assert (await manager.signing_key()).kid == new
    assert await published(manager) == [new, old]
    assert await replicas.states() == {new: "active", old: "retired"}
    assert rotations(metrics) == 1.0


async def test_algorithm_change_schedules_a_key_of_the_new_algorithm(replicas: Replicas) -> None:
    clock = replicas.clock
    first = await replicas.started(signing_alg="ES256")
    old = (await first.signing_key()).kid

    # Redeployed with RS256: the running key keeps signing until an RS256 key has been published.
    changed = await replicas.started(signing_alg="RS256")
    keys = {key.kid: key for key in await access_keys(changed)}
    (new,) = [kid for kid in keys if kid != old]
    assert keys[new].alg == "RS256"
    assert keys[new].state == "next"
    assert keys[new].promote_after == clock.now + LEAD
    assert (await changed.signing_key()).alg == "ES256"

    clock.advance(LEAD)
    assert f"promoted {new}" in await maintain(changed)
    material = await changed.signing_key()
    assert (material.kid, material.alg) == (new, "RS256")
    assert await changed.published_algs(ACCESS) == ["ES256", "RS256"]
    assert await maintain(changed) == []  # no further key once the algorithm matches


# --- revocation ---------------------------------------------------------------------------------


async def test_revoke_active_key_removes_it_at_once_and_tells_the_feed(replicas: Replicas) -> None:
    clock = replicas.clock
    manager = await replicas.started()
    old = (await manager.signing_key()).kid

    await manager.revoke(old)
    new = (await manager.signing_key()).kid
    assert new != old
    assert await published(manager) == [new]
    assert await manager.verification_key(old) is None
    assert await replicas.states() == {old: "revoked", new: "active"}

    async with create_sessionmaker(replicas.engines[0])() as session:
        (event,) = (await session.scalars(select(RevocationEvent))).all()
        (audit,) = (await session.scalars(select(SecurityEvent))).all()
    assert (event.kind, event.value) == ("key", old)
    assert event.expires_at == clock.now + EXPIRY
    assert audit.kind == "key_revoked"
    assert audit.detail["kid"] == old
    assert audit.detail["replacement_kid"] == new

    # Revoking twice is harmless and does not feed the edges twice.
    await manager.revoke(old)
    async with create_sessionmaker(replicas.engines[0])() as session:
        assert len((await session.scalars(select(RevocationEvent))).all()) == 1

    # The revoked row goes once its tokens would have expired anyway.
    clock.advance(EXPIRY + timedelta(seconds=1))
    assert await maintain(manager) == [f"removed revoked {old}"]
    assert await replicas.states() == {new: "active"}


async def test_revoke_active_key_promotes_a_published_next_key(replicas: Replicas) -> None:
    manager = await replicas.started()
    old = (await manager.signing_key()).kid
    nxt = await manager.rotate()

    await manager.revoke(old)
    assert (await manager.signing_key()).kid == nxt
    assert await published(manager) == [nxt]


async def test_revoke_next_or_unknown_key(replicas: Replicas) -> None:
    manager = await replicas.started()
    active = (await manager.signing_key()).kid
    nxt = await manager.rotate()

    await manager.revoke(nxt)
    assert await published(manager) == [active]
    assert (await manager.signing_key()).kid == active

    with pytest.raises(KeyNotFoundError):
        await manager.revoke("no-such-kid")


# --- several replicas ---------------------------------------------------------------------------


async def test_another_replica_sees_changes_within_seconds(replicas: Replicas) -> None:
    clock = replicas.clock
    first = await replicas.started()
    second = await replicas.started()
    old = (await first.signing_key()).kid
    assert (await second.signing_key()).kid == old

    new = await first.rotate(immediately=True)
    assert (await first.signing_key()).kid == new
    assert (await second.signing_key()).kid == old  # its snapshot is a few seconds old at most
    clock.advance(5)
    assert (await second.signing_key()).kid == new
    assert await second.jwks() == await first.jwks()

    await first.revoke(new)
    clock.advance(5)
    assert new not in await published(second)
    assert await second.verification_key(new) is None


async def test_concurrent_replicas_rotate_exactly_once(replicas: Replicas) -> None:
    clock = replicas.clock
    metrics = [Metrics(), Metrics(), Metrics()]
    managers = [await replicas.manager(metrics=m) for m in metrics]

    # First boot of three replicas at once: one active key.
    await asyncio.gather(*(m.start() for m in managers))
    assert list((await replicas.states()).values()) == ["active"]
    old = (await managers[0].signing_key()).kid

    clock.advance(INTERVAL - LEAD)
    results = await asyncio.gather(*(maintain(m) for m in managers))
    created = [action for actions in results for action in actions]
    assert len(created) == 1
    assert sorted((await replicas.states()).values()) == ["active", "next"]

    clock.advance(LEAD)
    results = await asyncio.gather(*(maintain(m) for m in managers))
    promoted = [action for actions in results for action in actions if "promoted" in action]
    assert len(promoted) == 1
    assert sum(rotations(m) for m in metrics) == 2.0  # and the ID-token key's, once
    states = await replicas.states()
    assert sorted(states.values()) == ["active", "retired"]
    assert states[old] == "retired"

    async with create_sessionmaker(replicas.engines[0])() as session:
        lock = await session.get(Lock, "key-rotation")
    assert lock is not None
    assert lock.holder
    assert lock.taken_at == clock.now


async def test_lock_row_is_recreated_if_missing(replicas: Replicas) -> None:
    manager = await replicas.manager()
    async with create_sessionmaker(replicas.engines[0])() as session, session.begin():
        await session.execute(delete(Lock))
    await manager.start()
    assert manager.has_active_key()
    async with create_sessionmaker(replicas.engines[0])() as session:
        assert await session.get(Lock, "key-rotation") is not None


async def test_concurrent_readers_trigger_one_reload(
    replicas: Replicas, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = await replicas.started()
    loads = 0
    original = manager._load_snapshot

    async def counting() -> Any:
        nonlocal loads
        loads += 1
        return await original()

    monkeypatch.setattr(manager, "_load_snapshot", counting)
    await asyncio.gather(*(manager.signing_key() for _ in range(10)))
    assert loads == 0  # fresh
    replicas.clock.advance(5)
    await asyncio.gather(*(manager.jwks() for _ in range(10)))
    assert loads == 1


async def test_database_outage_keeps_serving_the_last_keys(
    replicas: Replicas, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    manager = await replicas.started()
    document = await manager.jwks()

    async def failing() -> Any:
        raise OperationalError("SELECT", {}, ConnectionRefusedError("database down"))

    monkeypatch.setattr(manager, "_load_snapshot", failing)
    replicas.clock.advance(60)
    with caplog.at_level(logging.WARNING, logger="gatepass.auth.keys"):
        assert await manager.jwks() == document
    assert "serving the last loaded set" in caplog.text


# --- the KEK ------------------------------------------------------------------------------------


async def test_wrong_kek_is_refused(replicas: Replicas) -> None:
    await replicas.started(kek=KEK)
    stranger = await replicas.manager(kek=OTHER_KEK)
    with pytest.raises(ConfigError, match="key-encryption key does not match"):
        await stranger.start()


def test_load_kek_generates_a_private_file_in_development(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    kek = load_kek(settings)
    assert len(kek) == 32
    path = tmp_path / "data" / "kek"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_kek(settings) == kek  # reused on the next start
    assert sorted(p.name for p in path.parent.iterdir()) == ["kek"]  # no temporary left behind


def test_load_kek_refuses_production_without_a_key(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, environment="production")
    with pytest.raises(ConfigError, match="no key-encryption key"):
        load_kek(settings)
    assert not (tmp_path / "kek").exists()


def test_load_kek_formats(tmp_path: Path) -> None:
    raw = bytes.fromhex("9a2091e1c42cdaab3abfec1aef47136ad45bd4c474194cd215a0f1a7247bbde2")
    b64 = base64.urlsafe_b64encode(raw).decode()
    prod = {"environment": "production"}
    for text in (
        b64,
        b64.rstrip("="),
        raw.hex(),
        raw.hex().upper(),
        base64.b64encode(raw).decode(),
    ):
        assert load_kek(make_settings(tmp_path, kek=SecretStr(text), **prod)) == raw

    raw_file = tmp_path / "raw.kek"
    raw_file.write_bytes(raw)
    assert load_kek(make_settings(tmp_path, kek_file=raw_file, **prod)) == raw
    text_file = tmp_path / "text.kek"
    text_file.write_text(b64 + "\n")
    assert load_kek(make_settings(tmp_path, kek_file=text_file, **prod)) == raw

    bad: list[dict[str, Any]] = [
        {"kek": SecretStr(base64.urlsafe_b64encode(raw[:16]).decode())},  # 16 bytes
        {"kek": SecretStr("not a key!")},
        {"kek": SecretStr("")},
        {"kek_file": tmp_path / "missing.kek"},
        {"kek": SecretStr(b64), "kek_file": raw_file},
    ]
    for overrides in bad:
        with pytest.raises(ConfigError):
            load_kek(make_settings(tmp_path, **prod, **overrides))


# --- the background loop ------------------------------------------------------------------------


async def test_run_forever_survives_database_errors_and_stops_on_cancel(
    replicas: Replicas, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    manager = await replicas.started(key_check_interval=0.01)
    calls = 0
    twice = asyncio.Event()

    async def flaky() -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OperationalError("UPDATE locks", {}, TimeoutError("database is locked"))
        twice.set()
        return []

    monkeypatch.setattr(manager, "maintain", flaky)
    with caplog.at_level(logging.WARNING, logger="gatepass.auth.keys"):
        task = asyncio.create_task(manager.run_forever())
        await asyncio.wait_for(twice.wait(), timeout=5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert "retrying next tick" in caplog.text
    assert "database is locked" in caplog.text
    assert "UPDATE locks" not in caplog.text  # the driver's message, not the statement


# --- the JWKS route -----------------------------------------------------------------------------


@dataclass
class _FakeServices:
    keys: KeyManager
    settings: Settings
    metrics: Metrics


async def test_jwks_route_caching_headers(replicas: Replicas) -> None:
    manager = await replicas.started()
    app = FastAPI()
    app.include_router(jwks_router)
    metrics = Metrics()
    app.state.services = _FakeServices(
        keys=manager, settings=make_settings(replicas.tmp_path), metrics=metrics
    )
    document = await manager.jwks()
    cache_control = f"public, max-age={JWKS_MAX_AGE}"

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://auth") as client:
        response = await client.get("/.well-known/jwks.json")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/jwk-set+json"
        assert response.headers["cache-control"] == cache_control
        assert response.headers["etag"] == document.etag
        assert response.content == document.body

        matching = [
            document.etag,
            f"W/{document.etag}",
            f'"other", {document.etag}',
            "*",
        ]
        for value in matching:
            response = await client.get("/.well-known/jwks.json", headers={"If-None-Match": value})
            assert response.status_code == 304, value
            assert response.content == b""
            assert response.headers["etag"] == document.etag
            assert response.headers["cache-control"] == cache_control

        for value in ('"other"', 'W/"other", "x,y"', document.etag.strip('"')):
            response = await client.get("/.well-known/jwks.json", headers={"If-None-Match": value})
            assert response.status_code == 200, value
            assert response.content == document.body

        # After a rotation the old ETag no longer matches.
        await manager.rotate()
        response = await client.get(
            "/.well-known/jwks.json", headers={"If-None-Match": document.etag}
        )
        assert response.status_code == 200
        assert response.headers["etag"] != document.etag
    # Each answer is counted, so the issuer sees what the edges' caches cost it.
    served = {
        sample.labels["status"]: sample.value
        for sample in next(iter(metrics.jwks_requests.collect())).samples
        if sample.name.endswith("_total")
    }
    assert served["304"] >= 1
    assert served["200"] >= 2

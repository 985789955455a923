"""A signing key per purpose: access tokens and ID tokens each have their own keys, algorithm and
life cycle, and the JWKS publishes both. Against a real SQLite database, a clock the test moves.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fake_clock import FakeClock
from sqlalchemy import select
from typer.testing import CliRunner

from auth_service import cli, migrate
from auth_service.app import running
from auth_service.config import Settings
from auth_service.keys import (
    ACCESS,
    ID,
    KeyManager,
    UnknownPurposeError,
    sign_jwt,
)
from auth_service.metrics import Metrics
from auth_service.models import RevocationEvent, SigningKey
from auth_service.verification import access_token_verifier
from gatepass.core.errors import WrongTypeError
from gatepass.core.jwks import parse_jwks
from gatepass.db import create_engine, create_sessionmaker

KEK = bytes(range(32))
JWKS_MAX_AGE = 600
LEAD = JWKS_MAX_AGE + 60  # the publish lead: one JWKS lifetime plus the margin


def settings_at(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "development",
        "data_dir": tmp_path,
        "jwks_max_age": JWKS_MAX_AGE,
        "key_rotation_interval": 3600,
        "signing_alg": "ES256",
        "id_token_signing_alg": "RS256",
    }
    return Settings(**(values | overrides))


@pytest.fixture
async def managers(
    tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Callable[..., Awaitable[KeyManager]]]:
    """Started key managers on one database (a restart, or a redeploy with other settings)."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}")
    await migrate.upgrade(engine)

    async def started(**overrides: Any) -> KeyManager:
        manager = KeyManager(
            settings_at(tmp_path, **overrides),
            create_sessionmaker(engine),
            KEK,
            clock,
            Metrics(),
        )
        await manager.start()
        return manager

    try:
        yield started
    finally:
        await engine.dispose()


async def states(manager: KeyManager, purpose: str) -> dict[str, str]:
    return {key.kid: key.state for key in await manager.list_keys() if key.purpose == purpose}


async def test_first_boot_makes_an_active_key_for_each_purpose(
    managers: Callable[..., Awaitable[KeyManager]],
) -> None:
    manager = await managers()
    access, id_key = await manager.signing_key(), await manager.signing_key(ID)
    assert (access.alg, id_key.alg) == ("ES256", "RS256")
    assert access.kid != id_key.kid
    assert await manager.signing_key(ACCESS) == access
    assert manager.has_active_key()
    assert list((await states(manager, ACCESS)).values()) == ["active"]
    assert list((await states(manager, ID)).values()) == ["active"]

    published = json.loads((await manager.jwks()).body)["keys"]
    assert [(key["kid"], key["alg"], key["use"]) for key in published] == [
        (access.kid, "ES256", "sig"),
        (id_key.kid, "RS256", "sig"),
    ]
    assert await manager.published_algs(ACCESS) == ["ES256"]
    assert await manager.published_algs(ID) == ["RS256"]
    assert await manager.published_algs() == ["ES256", "RS256"]
    for kid in (access.kid, id_key.kid):
        assert await manager.verification_key(kid) is not None


async def test_rotating_one_purpose_leaves_the_other_alone(
    managers: Callable[..., Awaitable[KeyManager]], clock: FakeClock
) -> None:
    manager = await managers()
    access, old = (await manager.signing_key()).kid, (await manager.signing_key(ID)).kid

    new = await manager.rotate(purpose=ID)
    assert await states(manager, ID) == {old: "active", new: "next"}
    assert list((await states(manager, ACCESS)).values()) == ["active"]
    clock.advance(LEAD)
    await manager.maintain()
    assert (await manager.signing_key(ID)).kid == new
    assert await states(manager, ID) == {old: "retired", new: "active"}
    assert (await manager.signing_key()).kid == access

    now = await manager.rotate(immediately=True, purpose=ID)
    assert (await manager.signing_key(ID)).kid == now
    assert (await manager.signing_key()).kid == access


async def test_revoking_a_key_replaces_it_within_its_purpose(
    managers: Callable[..., Awaitable[KeyManager]], tmp_path: Path, clock: FakeClock
) -> None:
    manager = await managers()
    access, old = (await manager.signing_key()).kid, (await manager.signing_key(ID)).kid

    await manager.revoke(old)
    replacement = await manager.signing_key(ID)
    assert replacement.kid != old
    assert replacement.alg == "RS256"
    assert await states(manager, ID) == {old: "revoked", replacement.kid: "active"}
    assert (await manager.signing_key()).kid == access
    assert await manager.verification_key(old) is None

    # The edges hear of it as long as an ID token it signed could live.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}")
    try:
        async with create_sessionmaker(engine)() as db:
            (event,) = (await db.scalars(select(RevocationEvent))).all()
            purposes = dict((await db.execute(select(SigningKey.kid, SigningKey.purpose))).all())
    finally:
        await engine.dispose()
    assert event.value == old
    assert event.expires_at == clock.now + timedelta(seconds=300 + 60)  # id_token_ttl + leeway
    assert purposes[replacement.kid] == ID


async def test_an_id_token_algorithm_change_is_published_a_lead_before_it_signs(
    managers: Callable[..., Awaitable[KeyManager]], clock: FakeClock
) -> None:
    first = await managers()
    old = (await first.signing_key(ID)).kid
    access = (await first.signing_key()).kid

    changed = await managers(id_token_signing_alg="Ed25519")
    (new,) = [kid for kid, state in (await states(changed, ID)).items() if state == "next"]
    assert (await changed.signing_key(ID)).kid == old  # RS256 signs until the lead has passed
    assert await changed.published_algs(ID) == ["Ed25519", "RS256"]
    clock.advance(LEAD)
    await changed.maintain()
    material = await changed.signing_key(ID)
    assert (material.kid, material.alg) == (new, "Ed25519")
    assert (await changed.signing_key()).kid == access  # the access key's life goes on


async def test_an_ed25519_key_signs_and_is_published_under_rfc_9864_s_name(
    managers: Callable[..., Awaitable[KeyManager]], clock: FakeClock, tmp_path: Path
) -> None:
    """And an ID token (``typ: JWT``) is no access token, whichever key signed it."""
    manager = await managers(signing_alg="Ed25519", id_token_signing_alg="Ed25519")
    material = await manager.signing_key(ID)
    now = int(clock.now.timestamp())
    claims = {"iss": "http://127.0.0.1:8000", "sub": "u", "aud": "auth", "iat": now}
    token = sign_jwt(material, {**claims, "exp": now + 300}, typ="JWT")
    header = json.loads(parse_header(token))
    assert header == {"alg": "Ed25519", "kid": material.kid, "typ": "JWT"}

    keys = parse_jwks((await manager.jwks()).body).keys
    assert {key.alg for key in keys.values()} == {"Ed25519"}
    signed, _, signature = token.encode().rpartition(b".")
    assert keys[material.kid].verify(signed, b64decode(signature))

    verifier = access_token_verifier(manager, settings_at(tmp_path), clock)
    with pytest.raises(WrongTypeError):
        await verifier.verify(token)


async def test_an_unknown_purpose_is_refused(
    managers: Callable[..., Awaitable[KeyManager]],
) -> None:
    manager = await managers()
    with pytest.raises(UnknownPurposeError):
        await manager.signing_key("refresh")
    with pytest.raises(UnknownPurposeError):
        await manager.rotate(purpose="refresh")
    with pytest.raises(UnknownPurposeError):
        await manager.published_algs("refresh")


async def test_the_operator_lists_purposes_and_rotates_the_id_token_key(tmp_path: Path) -> None:
    settings = settings_at(tmp_path)
    async with running(settings, background=False) as services:
        id_kid = (await services.keys.signing_key(ID)).kid
    env = {
        "GATEPASS_AUTH_ENVIRONMENT": "development",
        "GATEPASS_AUTH_DATA_DIR": str(tmp_path),
        "GATEPASS_AUTH_ID_TOKEN_SIGNING_ALG": "RS256",
    }

    def gatepass(*args: str) -> str:
        result = CliRunner().invoke(cli.app, list(args), env=env)
        assert result.exit_code == 0, (args, result.stdout, result.stderr, result.exception)
        return result.stdout

    listing = await asyncio.to_thread(gatepass, "keys", "list")
    assert "purpose" in listing
    assert "access" in listing
    assert id_kid[:10] in listing
    rotated = await asyncio.to_thread(gatepass, "keys", "rotate", "--purpose", "id")
    new_kid = rotated.split(":")[0].strip()
    async with running(settings, background=False) as services:
        keys = {key.kid: key for key in await services.keys.list_keys()}
    assert (keys[new_kid].purpose, keys[new_kid].state) == (ID, "next")
    refused = CliRunner().invoke(cli.app, ["keys", "rotate", "--purpose", "refresh"], env=env)
    assert refused.exit_code == 2


def parse_header(token: str) -> bytes:
    return b64decode(token.encode().split(b".")[0])


def b64decode(segment: bytes) -> bytes:
    return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))

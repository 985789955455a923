"""ID tokens (OpenID Connect Core §2, §3.1.3.6), checked as a relying party checks them: with the
published JWKS alone. And ``id_token_hint`` read back (RP-initiated logout)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import jwt
import pytest
from api_users import jose_part
from cryptography.hazmat.primitives.asymmetric import ed25519
from fake_clock import FakeClock
from jwt.algorithms import OKPAlgorithm
from oidc_helpers import (
    PUBLIC_APP,
    Browser,
    at_hash,
    tokens_for,
    verify_id_token,
)

from auth_service import idtokens
from auth_service.keys import SigningMaterial
from auth_service.state import Services

pytestmark = pytest.mark.usefixtures("oidc_app")


async def test_the_id_token_says_who_when_and_for_whom(
    client: httpx.AsyncClient, services: Services, clock: FakeClock, browser: Browser
) -> None:
    signed_in_at = int(clock().timestamp())
    clock.advance(40)
    body, params = await tokens_for(client, browser)
    claims = await verify_id_token(client, body["id_token"])
    header = jose_part(body["id_token"], 0)
    assert header["alg"] == "RS256"  # the ID-token key's algorithm (settings default)
    assert header["typ"] == "JWT"
    assert claims["sub"] == browser.user_id
    assert claims["aud"] == PUBLIC_APP
    assert claims["azp"] == PUBLIC_APP
    assert claims["nonce"] == params["nonce"]
    assert claims["auth_time"] == signed_in_at  # the password check, not the code's time
    now = int(clock().timestamp())
    assert claims["iat"] == now
    assert claims["exp"] == now + services.settings.id_token_ttl
    assert claims["at_hash"] == at_hash(body["access_token"])
    # sid is the session the code opened for the app: the one its tokens belong to.
    assert claims["sid"] == jose_part(body["access_token"], 1)["sid"]


async def test_without_a_nonce_there_is_none(client: httpx.AsyncClient, browser: Browser) -> None:
    body, _ = await tokens_for(client, browser, nonce=None)
    assert "nonce" not in await verify_id_token(client, body["id_token"])


async def test_an_id_token_is_no_access_token(client: httpx.AsyncClient, browser: Browser) -> None:
    body, _ = await tokens_for(client, browser)
    answer = await client.get("/me", headers={"Authorization": f"Bearer {body['id_token']}"})
    assert answer.status_code == 401


async def test_a_hint_is_read_back_expired_or_not(
    client: httpx.AsyncClient, services: Services, clock: FakeClock, browser: Browser
) -> None:
    body, _ = await tokens_for(client, browser)
    clock.advance(services.settings.id_token_ttl * 10)
    hint = await idtokens.read_id_token_hint(services, body["id_token"])
    assert hint is not None
    assert hint.client_id == PUBLIC_APP
    assert hint.subject == browser.user_id
    assert hint.session_id == jose_part(body["access_token"], 1)["sid"]


async def test_what_is_no_id_token_of_ours_is_no_hint(
    client: httpx.AsyncClient, services: Services, browser: Browser
) -> None:
    body, _ = await tokens_for(client, browser)
    id_token = body["id_token"]
    head, payload, signature = id_token.split(".")
    forged = f"{head}.{payload}.{signature[:-4]}AAAA"
    other_key = jwt.encode(
        {"iss": services.settings.issuer, "sub": "usr_x", "aud": PUBLIC_APP},
        "secret-" * 6,
        algorithm="HS256",
        headers={"kid": jose_part(id_token, 0)["kid"], "typ": "JWT"},
    )
    for token in (forged, other_key, body["access_token"], "", "a.b.c", "x" * 10_000):
        assert await idtokens.read_id_token_hint(services, token) is None


async def test_an_ed25519_id_token_is_signed_and_read_as_ed25519(services: Services) -> None:
    key = SigningMaterial("k-ed", "Ed25519", ed25519.Ed25519PrivateKey.generate())
    now = datetime(2030, 1, 1, tzinfo=UTC)
    token = idtokens.sign_id_token(
        key,
        services.settings,
        subject="usr_1",
        audience=PUBLIC_APP,
        session_id="ses_1",
        auth_time=now,
        nonce="n",
        now=now,
        access_token="abc",
    )
    assert jose_part(token, 0) == {"alg": "Ed25519", "kid": "k-ed", "typ": "JWT"}
    claims = jose_part(token, 1)
    assert claims["at_hash"] == idtokens.token_hash("abc", "Ed25519")
    assert len(claims["at_hash"]) == 43  # half of SHA-512
    jws = jwt.PyJWS()  # a verifier that knows RFC 9864's name
    jws.register_algorithm("Ed25519", OKPAlgorithm())
    jws.decode_complete(token, key.private_key.public_key(), algorithms=["Ed25519"])

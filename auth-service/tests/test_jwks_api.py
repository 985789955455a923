"""Signing keys seen from outside: the JWKS and its caching headers, the other algorithms, a
rotation that publishes a key before it signs, discovery, health, readiness and metrics.
In-process, over ASGI.

The app's clock starts at the real time (``verify_with_jwks`` checks tokens with PyJWT, which reads
the real time) and moves only when a test moves it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

import httpx
import pytest
from api_users import bearer, jose_part, login, new_user, verify_with_jwks
from asgi_clients import BASE_URL, client_from
from auth_apps import ServiceClock, serving

from auth_service.app import running
from auth_service.config import Settings
from gatepass import AccessPrincipal, StaticKeySet, Verifier

PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


class MovableClock(ServiceClock, Protocol):
    now: datetime

    def advance(self, seconds: float) -> None: ...


@pytest.fixture
def clock(clock: MovableClock) -> MovableClock:
    clock.now = datetime.now(UTC).replace(microsecond=0)
    return clock


async def jwks(http: httpx.AsyncClient) -> list[dict[str, str]]:
    keys: list[dict[str, str]] = (await http.get("/.well-known/jwks.json")).json()["keys"]
    return keys


async def test_jwks_publishes_public_parameters_with_caching_headers(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/jwk-set+json")
    assert response.headers["cache-control"] == "public, max-age=600"
    etag = response.headers["etag"]
    # The access-token key first, then the ID-token key (RS256 by default), each its own alg.
    (key, id_key) = response.json()["keys"]
    assert key["use"] == "sig"
    assert key["alg"] == "ES256"
    assert key["kty"] == "EC"
    assert key["crv"] == "P-256"
    assert key["kid"]
    assert not PRIVATE_JWK_MEMBERS & set(key)
    assert (id_key["use"], id_key["alg"], id_key["kty"]) == ("sig", "RS256", "RSA")
    assert not PRIVATE_JWK_MEMBERS & set(id_key)
    cached = await client.get("/.well-known/jwks.json", headers={"If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.content == b""
    assert cached.headers["etag"] == etag


@pytest.mark.parametrize(("alg", "kty"), [("RS256", "RSA"), ("Ed25519", "OKP")])
async def test_other_signing_algorithms(
    settings_for: Callable[..., Settings], clock: MovableClock, alg: str, kty: str
) -> None:
    """Ed25519 is signed and published under RFC 9864's name (``EdDSA`` is the deprecated one),
    and the edges' verifier accepts it from the JWKS alone."""
    async with serving(settings_for(signing_alg=alg), clock) as app, client_from(app) as client:
        key = (await jwks(client))[0]  # the access-token key (then the ID-token key)
        assert key["alg"] == alg
        assert key["kty"] == kty
        assert not PRIVATE_JWK_MEMBERS & set(key)
        _, user_id, tokens = await new_user(client)
        assert jose_part(tokens["access_token"], 0)["alg"] == alg
        assert (await verify_as_an_edge(client, tokens["access_token"])).sub == user_id
        if alg != "Ed25519":  # PyJWT knows Ed25519 only as EdDSA
            assert (await verify_with_jwks(client, tokens["access_token"]))["sub"] == user_id


async def verify_as_an_edge(http: httpx.AsyncClient, token: str) -> AccessPrincipal:
    document = (await http.get("/.well-known/jwks.json")).json()
    verifier = Verifier(StaticKeySet.from_jwks(document), issuer=BASE_URL, audience="mail")
    return await verifier.verify(token)


async def test_rotation_publishes_a_key_before_it_signs(
    settings_for: Callable[..., Settings], clock: MovableClock
) -> None:
    # A two-second JWKS lifetime and no extra margin: the new key must sit in the JWKS >= 2 s
    # first, judged by the issuer's own record (the key's row, the tokens' iat).
    max_age, tick = 2, 0.2
    settings = settings_for(jwks_max_age=max_age, key_publish_margin=0, key_check_interval=tick)
    async with serving(settings, clock) as app, client_from(app) as client:
        services = app.state.services
        email, _, tokens = await new_user(client)
        old_kid = jose_part(tokens["access_token"], 0)["kid"]
        # The operator's `gatepass keys rotate`: the service's parts started on the same data,
        # without loops, as the command starts them; the app learns it from the database.
        async with running(settings, clock, background=False) as operator:
            await operator.keys.rotate()
        clock.advance(tick)  # the app's snapshot of the keys is now due for a reload
        kids = [key["kid"] for key in await jwks(client)][:2]  # the access-token keys first
        assert old_kid in kids  # and the new one, published at once
        new_kid = next(kid for kid in kids if kid != old_kid)
        signed: list[tuple[int, str]] = []  # (iat, kid) of each token, in order
        while not signed or signed[-1][1] == old_kid:
            assert len(signed) < 10 * max_age / tick, "the new key never started signing"
            token = (await login(client, email))["access_token"]
            signed.append((jose_part(token, 1)["iat"], jose_part(token, 0)["kid"]))
            clock.advance(tick)
            await services.keys.maintain()  # the maintenance loop's tick
        (row,) = [key for key in await services.keys.list_keys() if key.kid == new_kid]
        assert row.activated_at is not None
        # The issuer's own record: published (created) at least one JWKS max-age before signing.
        assert (row.activated_at - row.created_at).total_seconds() >= max_age
        # No token was signed with the new key before a whole max-age had passed since it was
        # published (iat is whole seconds, hence the one-second floor).
        first_new = min(iat for iat, kid in signed if kid == new_kid)
        assert first_new >= int(row.created_at.timestamp()) + max_age - 1
        # The old key stays published while tokens it signed can live; they still verify.
        assert old_kid in [key["kid"] for key in await jwks(client)]
        me = await client.get("/me", headers=bearer(tokens["access_token"]))
        assert me.status_code == 200


async def test_discovery_document(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/.well-known/openid-configuration")).json()
    assert doc["issuer"] == BASE_URL
    assert doc["jwks_uri"] == f"{BASE_URL}/.well-known/jwks.json"
    assert doc["token_endpoint"] == f"{BASE_URL}/token"
    assert doc["introspection_endpoint"] == f"{BASE_URL}/introspect"
    assert "refresh_token" in doc["grant_types_supported"]
    assert {"mail:read", "video:delete", "admin"} <= set(doc["scopes_supported"])
    assert (await client.get(doc["jwks_uri"].removeprefix(BASE_URL))).status_code == 200


async def test_health_readiness_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = (await client.get("/readyz")).json()
    assert ready["checks"] == {"database": True, "signing_key": True}
    email, _, _ = await new_user(client)
    await client.post("/login", json={"email": email, "password": "Wrong-password-1"})
    text = (await client.get("/metrics")).text
    assert 'gatepass_auth_logins_total{outcome="success"} 1.0' in text
    assert 'gatepass_auth_logins_total{outcome="invalid_credentials"} 1.0' in text
    assert 'gatepass_auth_tokens_issued_total{grant="password"} 1.0' in text
    assert "gatepass_auth_signing_key_age_seconds" in text
    assert (await client.get("/docs")).status_code == 200

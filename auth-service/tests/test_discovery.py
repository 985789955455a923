"""The discovery document: RFC 8414 metadata that claims only what is implemented, its signing
algorithms those of the keys actually published in the JWKS.

In-process: the real app over ASGI, a real SQLite file. The rules of RFC 8414 that apply here are
checked by hand below; ``test_discovery_metadata.py`` runs authlib's validators as well.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from auth_service import clients
from auth_service.app import create_app, running
from auth_service.config import Settings

ISSUER = "https://auth.example.com"
PATHS = ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"]
AUTHORIZATION_ENDPOINT_GRANTS = {"authorization_code", "implicit"}


@pytest.fixture
def auth_settings(auth_settings: Settings) -> Settings:
    return auth_settings.model_copy(update={"issuer": ISSUER})


def rfc8414_problems(doc: dict[str, Any]) -> list[str]:
    """What RFC 8414 §2/§3.2 (and authlib's validator, which follows it) would refuse."""
    problems = []
    issuer = urlsplit(doc.get("issuer", ""))
    if issuer.scheme != "https" or issuer.query or issuer.fragment:
        problems.append("issuer: an https URL without query or fragment")
    grants = set(doc.get("grant_types_supported", AUTHORIZATION_ENDPOINT_GRANTS))
    if grants & AUTHORIZATION_ENDPOINT_GRANTS and "authorization_endpoint" not in doc:
        problems.append("authorization_endpoint: required by the grants")
    if not doc.get("token_endpoint"):
        problems.append("token_endpoint: required")
    for name, value in doc.items():
        problems.extend(value_problems(name, value))
    if not doc.get("response_types_supported"):
        problems.append("response_types_supported: required")
    return problems


def value_problems(name: str, value: Any) -> list[str]:
    if (name.endswith("_endpoint") or name == "jwks_uri") and not str(value).startswith("https:"):
        return [f"{name}: https"]
    if not name.endswith("_supported"):
        return []
    if name.endswith("parameter_supported"):  # OIDC Discovery §3, RFC 9207 §3: booleans
        return [] if isinstance(value, bool) else [f"{name}: a boolean"]
    if not isinstance(value, list) or not value:
        return [f"{name}: a non-empty JSON array (§3.2)"]
    if not all(isinstance(item, str) for item in value):
        return [f"{name}: strings"]
    if name.endswith("alg_values_supported") and "none" in value:
        return [f"{name}: 'none' must not be used"]
    return []


async def published_algs(client: httpx.AsyncClient) -> list[str]:
    keys = (await client.get("/.well-known/jwks.json")).json()["keys"]
    return sorted({key["alg"] for key in keys})


@pytest.mark.parametrize("path", PATHS)
async def test_the_document_passes_rfc_8414_and_claims_only_what_exists(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    doc = response.json()
    assert rfc8414_problems(doc) == []
    assert doc["issuer"] == ISSUER
    assert doc["authorization_endpoint"] == f"{ISSUER}/authorize"
    assert doc["grant_types_supported"] == [
        "authorization_code",
        "refresh_token",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    ]
    assert doc["response_types_supported"] == ["code"]  # no implicit flow, no hybrid
    assert doc["response_modes_supported"] == ["query"]
    assert doc["code_challenge_methods_supported"] == ["S256"]  # never plain
    client_auth = {"none", "client_secret_basic", "client_secret_post", "private_key_jwt"}
    assertion_algs = set(clients.ASSERTION_ALGS)
    assert {"ES256", "RS256", "PS256"} <= assertion_algs
    assert set(doc["token_endpoint_auth_methods_supported"]) == client_auth
    assert set(doc["token_endpoint_auth_signing_alg_values_supported"]) == assertion_algs
    assert doc["introspection_endpoint_auth_methods_supported"] == ["client_secret_basic"]
    assert "introspection_endpoint_auth_signing_alg_values_supported" not in doc
    # RFC 7009 revocation, and the feed the edges follow to learn revocations.
    assert doc["revocation_endpoint"] == f"{ISSUER}/revoke"
    assert set(doc["revocation_endpoint_auth_methods_supported"]) == client_auth
    assert set(doc["revocation_endpoint_auth_signing_alg_values_supported"]) == assertion_algs
    assert {"mail:notify", "revocations:read", "mail:read", "admin"} <= set(doc["scopes_supported"])
    assert doc["gatepass_revocation_feed_endpoint"] == f"{ISSUER}/revocations"
    algs = await published_algs(client)
    assert algs == ["ES256", "RS256"]  # the access-token key's, the ID-token key's
    assert doc["access_token_signing_alg_values_supported"] == ["ES256"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]


async def test_the_algorithms_follow_the_published_keys_not_the_setting(
    auth_settings: Settings,
) -> None:
    """A changed ``SIGNING_ALG`` rolls in through a rotation: until then the JWKS still holds
    the old algorithm's keys, and so does the document; the ID-token keys are not involved."""
    async with running(auth_settings, background=False):
        pass  # the first start creates an ES256 key
    rs256 = auth_settings.model_copy(update={"signing_alg": "RS256"})
    app = create_app(rs256)
    async with running(rs256, background=False) as services:
        app.state.services = services
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as client:
            doc = (await client.get(PATHS[0])).json()
            algs = await published_algs(client)
    assert algs == ["ES256", "RS256"]
    assert doc["access_token_signing_alg_values_supported"] == ["ES256", "RS256"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert rfc8414_problems(doc) == []

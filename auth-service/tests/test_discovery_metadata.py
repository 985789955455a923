"""The served metadata passes validators nobody here wrote: authlib's OpenID Provider Metadata
(OpenID Connect Discovery 1.0) and Authorization Server Metadata (RFC 8414); and what it says
about ID tokens follows the ID-token keys actually published.

In-process: the real app over ASGI, a real SQLite file, an https issuer.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata

from auth_service.app import create_app, running
from auth_service.config import Settings

ISSUER = "https://auth.example.com"
OPENID = "/.well-known/openid-configuration"
OAUTH = "/.well-known/oauth-authorization-server"


@pytest.fixture
def auth_settings(auth_settings: Settings) -> Settings:
    return auth_settings.model_copy(update={"issuer": ISSUER})


async def served(settings: Settings, path: str) -> dict[str, Any]:
    app = create_app(settings)
    async with running(settings, background=False) as services:
        app.state.services = services
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as client:
            document: dict[str, Any] = (await client.get(path)).json()
    return document


async def test_the_openid_configuration_passes_authlib(client: httpx.AsyncClient) -> None:
    document = (await client.get(OPENID)).json()
    OpenIDProviderMetadata(document).validate()
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    for name, path in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/userinfo"),
        ("end_session_endpoint", "/end-session"),
        ("jwks_uri", "/.well-known/jwks.json"),
        ("revocation_endpoint", "/revoke"),
        ("introspection_endpoint", "/introspect"),
    ]:
        assert document[name] == ISSUER + path
    assert document["subject_types_supported"] == ["public"]
    assert document["prompt_values_supported"] == ["none", "login"]
    assert document["authorization_response_iss_parameter_supported"] is True
    assert document["request_uri_parameter_supported"] is False  # Discovery's default is true
    assert {"openid", "email", "mail:read", "admin"} <= set(document["scopes_supported"])
    assert {"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "sid"} <= set(
        document["claims_supported"]
    )


async def test_the_authorization_server_metadata_passes_authlib(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get(OAUTH)).json()
    AuthorizationServerMetadata(document).validate()
    assert document == (await client.get(OPENID)).json()  # one document, two names
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["response_types_supported"] == ["code"]


async def test_the_id_token_algorithms_are_those_of_the_published_id_token_keys(
    auth_settings: Settings,
) -> None:
    """A changed ID-token algorithm appears once its first key is published (a lead before it
    signs), beside the old one, which stays while its tokens live; the access-token algorithms
    are told apart."""
    assert (await served(auth_settings, OPENID))["id_token_signing_alg_values_supported"] == [
        "RS256"
    ]
    changed = auth_settings.model_copy(
        update={"id_token_signing_alg": "Ed25519", "signing_alg": "ES256"}
    )
    document = await served(changed, OPENID)
    assert document["id_token_signing_alg_values_supported"] == ["Ed25519", "RS256"]
    assert document["access_token_signing_alg_values_supported"] == ["ES256"]
    OpenIDProviderMetadata(document).validate()  # RS256 still there, as OpenID Connect requires

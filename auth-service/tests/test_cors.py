"""CORS: a registered app's web page may call the metadata, the JWKS, /token, /userinfo and
/revoke from the browser; no other origin may, and nothing else is offered.

In-process, over ASGI: the registry's app, registered as the admin API would, gives the origins.
"""

from __future__ import annotations

import httpx
import pytest

from auth_service import registry
from auth_service.cors import ORIGINS_CACHE_SECONDS, WebOrigins
from auth_service.models import Client
from auth_service.state import Services

APP_ORIGIN = "https://app.example.test"
LOGOUT_ORIGIN = "http://127.0.0.1:5173"
STRANGER = "https://evil.example.test"


@pytest.fixture(autouse=True)
async def web_app(services: Services) -> None:
    """A public app whose code comes back to APP_ORIGIN and whose logout returns to a local
    page: two origins."""
    async with services.sessions() as db:
        await registry.register(
            db,
            services.settings,
            client_id="web",
            kind="app",
            auth_method="none",
            audiences=["mail"],
            scopes=["mail:read"],
            redirect_uris=[f"{APP_ORIGIN}/callback"],
            post_logout_redirect_uris=[f"{LOGOUT_ORIGIN}/bye"],
            now=services.clock(),
        )


def preflight(method: str, origin: str = APP_ORIGIN) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type",
    }


@pytest.mark.parametrize(
    ("path", "method", "allowed"),
    [
        ("/token", "POST", "POST"),
        ("/revoke", "POST", "POST"),
        ("/userinfo", "GET", "GET, POST"),
        ("/.well-known/openid-configuration", "GET", "GET, HEAD"),
        ("/.well-known/jwks.json", "GET", "GET, HEAD"),
    ],
)
async def test_a_registered_origin_s_preflight_is_answered(
    client: httpx.AsyncClient, path: str, method: str, allowed: str
) -> None:
    response = await client.options(path, headers=preflight(method))
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    assert response.headers["access-control-allow-methods"] == allowed
    assert response.headers["access-control-allow-headers"] == "Authorization, Content-Type"
    assert "access-control-allow-credentials" not in response.headers
    assert response.headers["vary"] == "Origin"


async def test_both_kinds_of_registered_uri_give_an_origin(client: httpx.AsyncClient) -> None:
    for origin in (APP_ORIGIN, LOGOUT_ORIGIN):
        response = await client.get("/.well-known/jwks.json", headers={"Origin": origin})
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == origin
        assert "Origin" in response.headers["vary"]
        assert "ETag" in response.headers["access-control-expose-headers"]


async def test_the_answers_carry_the_origin_never_a_wildcard(client: httpx.AsyncClient) -> None:
    """Errors too: a page must be able to read the token endpoint's ``invalid_grant``."""
    token = await client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": "nope", "client_id": "web"},
        headers={"Origin": APP_ORIGIN},
    )
    assert token.status_code == 400
    assert token.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "access-control-allow-credentials" not in token.headers
    metadata = await client.head(
        "/.well-known/openid-configuration", headers={"Origin": APP_ORIGIN}
    )
    assert metadata.headers["access-control-allow-origin"] == APP_ORIGIN


@pytest.mark.parametrize("origin", [STRANGER, "null", "https://app.example.test.evil.test"])
async def test_other_origins_get_no_cors_headers(client: httpx.AsyncClient, origin: str) -> None:
    refused = await client.options("/token", headers=preflight("POST", origin))
    assert refused.status_code == 403
    assert refused.json()["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in refused.headers
    answer = await client.get("/.well-known/jwks.json", headers={"Origin": origin})
    assert answer.status_code == 200  # served (it is public), but not readable by that page
    assert "access-control-allow-origin" not in answer.headers
    assert answer.headers["vary"] == "Origin"


async def test_only_the_listed_paths_offer_cors(client: httpx.AsyncClient) -> None:
    for path in ("/login", "/me", "/sessions", "/admin/users"):
        response = await client.options(path, headers=preflight("POST"))
        assert "access-control-allow-origin" not in response.headers
    same_site = await client.get("/.well-known/jwks.json")  # no Origin: nothing added but Vary
    assert "access-control-allow-origin" not in same_site.headers
    assert same_site.headers["vary"] == "Origin"


async def test_a_disabled_or_service_client_gives_no_origin(services: Services) -> None:
    async with services.sessions() as db, db.begin():
        db.add(
            Client(
                id="svc",
                kind="service",
                auth_method="client_secret_basic",
                secret_hash="0" * 64,
                audiences=["mail"],
                scopes=[],
                resource=None,
                jwks=None,
                jwks_uri=None,
                disabled=False,
                created_at=services.clock(),
                updated_at=services.clock(),
                redirect_uris=["https://service.example.test/cb"],
                post_logout_redirect_uris=None,
            )
        )
        web = await db.get(Client, "web")
        assert web is not None
        web.disabled = True
    assert await WebOrigins().allowed(services) == frozenset()


async def test_origins_are_read_again_after_a_few_seconds(services: Services) -> None:
    now = [0.0]
    origins = WebOrigins(clock=lambda: now[0])
    assert await origins.allowed(services) == {APP_ORIGIN, LOGOUT_ORIGIN}
    async with services.sessions() as db:
        await registry.set_disabled(
            db, services.settings, "web", disabled=True, now=services.clock()
        )
    assert await origins.allowed(services) == {APP_ORIGIN, LOGOUT_ORIGIN}  # cached
    now[0] += ORIGINS_CACHE_SECONDS
    assert await origins.allowed(services) == frozenset()

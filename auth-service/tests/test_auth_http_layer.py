"""The auth service's HTTP layer, in-process: HEAD, security headers, no slash redirects, API docs,
and the body-size limit for bodies sent without ``Content-Length``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from auth_service.app import create_app
from auth_service.config import Settings
from gatepass.edgetest import expect_problem

PASSWORD = "correct horse battery staple 42"
DISCOVERY = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")


async def logged_in(client: httpx.AsyncClient) -> httpx.Response:
    email = "ada@example.com"
    assert (await client.post("/signup", json={"email": email, "password": PASSWORD})).is_success
    login = await client.post("/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200
    return login


async def test_head_answers_wherever_get_does(client: httpx.AsyncClient) -> None:
    for path in ("/.well-known/jwks.json", *DISCOVERY, "/healthz"):
        get, head = await client.get(path), await client.head(path)
        assert (head.status_code, head.content) == (200, b""), path
        for name in ("content-length", "content-type", "cache-control", "etag"):
            assert head.headers.get(name) == get.headers.get(name), (path, name)
    etag = (await client.get("/.well-known/jwks.json")).headers["etag"]
    revalidated = await client.head("/.well-known/jwks.json", headers={"if-none-match": etag})
    assert revalidated.status_code == 304


async def test_tokens_and_personal_data_are_never_stored_by_a_cache(
    client: httpx.AsyncClient,
) -> None:
    login = await logged_in(client)
    tokens = login.json()
    bearer = {"authorization": f"Bearer {tokens['access_token']}"}
    refreshed = await client.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    answers = [
        login,
        refreshed,
        await client.get("/me", headers=bearer),
        await client.get("/sessions", headers=bearer),
        await client.get("/me"),  # 401
        await client.post("/login", json={"email": "x@example.com", "password": "wrong-one-1"}),
        await client.get("/metrics"),
    ]
    for answer in answers:
        assert answer.headers["cache-control"] == "no-store", answer.request.url
        assert answer.headers["x-content-type-options"] == "nosniff", answer.request.url


async def test_public_documents_keep_their_own_cache_lifetime(client: httpx.AsyncClient) -> None:
    jwks = await client.get("/.well-known/jwks.json")
    assert jwks.headers["cache-control"].startswith("public, max-age=")
    assert jwks.headers["x-content-type-options"] == "nosniff"
    for path in DISCOVERY:
        discovery = await client.get(path)
        assert discovery.headers["cache-control"].startswith("public, max-age=")
        assert discovery.headers["x-content-type-options"] == "nosniff"


async def test_no_redirect_built_from_the_host_header(client: httpx.AsyncClient) -> None:
    for path in ("/sessions/", "/.well-known/jwks.json/", "/healthz/"):
        answer = await client.get(path, headers={"host": "evil.example"})
        expect_problem(answer, 404, "not_found")
        assert "location" not in answer.headers


async def oversized() -> AsyncIterator[bytes]:
    """70 KiB with no Content-Length: httpx sends it chunked."""
    for _ in range(70):
        yield b"a" * 1024


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/login", "application/json"),
        ("/signup", "application/json"),
        ("/token", "application/x-www-form-urlencoded"),
    ],
)
async def test_a_chunked_body_over_the_limit_is_413(
    client: httpx.AsyncClient, path: str, media_type: str
) -> None:
    answer = await client.post(path, content=oversized(), headers={"content-type": media_type})
    assert "content-length" not in answer.request.headers
    expect_problem(answer, 413, "payload_too_large")


@pytest.mark.parametrize(
    ("environment", "api_docs", "served"),
    [("development", None, True), ("production", None, False), ("production", True, True)],
)
async def test_api_docs_only_where_the_settings_allow(
    settings_for: Callable[..., Settings], environment: str, api_docs: bool | None, *, served: bool
) -> None:
    settings = settings_for(environment=environment, api_docs=api_docs)
    app = create_app(settings)  # the docs need no running services
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=settings.issuer) as http:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert (await http.get(path)).status_code == (200 if served else 404), path

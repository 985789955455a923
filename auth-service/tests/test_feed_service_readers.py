"""``GET /revocations`` read with a service token (client credentials, audience ``auth``, scope
``revocations:read``) beside the configured read tokens: the reader is then the client id. A
user's token stays a 401, a service token without the scope is a 403, one its client can no
longer use a 401.

In-process over ASGI, a real SQLite file, the test's clock.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from api_users import bearer, new_user
from asgi_clients import client_from
from fake_clock import FakeClock
from fastapi import FastAPI
from feed_helpers import read
from service_clients import ClientSecret, register, service_token, set_disabled

from auth_service import registry
from auth_service.config import Settings
from auth_service.state import Services

MAIL_TOKEN = "mail-edge-feed-token-0123456789"
EDGE = "mail-edge"


@pytest.fixture
def auth_settings(settings_for: Callable[..., Settings]) -> Settings:
    """The feed is not anonymous: one static reader is configured."""
    return settings_for(feed_read_tokens={"mail": MAIL_TOKEN})


@pytest.fixture
async def edge(services: Services) -> ClientSecret:
    return await register(
        services, EDGE, audiences=["auth", "mail"], scopes=["revocations:read", "mail:notify"]
    )


async def test_a_service_token_with_the_scope_reads_the_feed_as_its_client(
    client: httpx.AsyncClient, edge: ClientSecret
) -> None:
    token = await service_token(client, edge, resource="auth", scope="revocations:read")
    answer = await read(client, headers=bearer(token))
    static = await read(client, headers=bearer(MAIL_TOKEN))
    assert answer.status_code == 200, answer.text
    assert answer.json()["snapshot"] is True
    assert static.status_code == 200
    metrics = (await client.get("/metrics")).text
    assert f'gatepass_auth_feed_requests_total{{reader="{EDGE}",status="200"}} 1.0' in metrics
    assert 'gatepass_auth_feed_requests_total{reader="mail",status="200"} 1.0' in metrics


async def test_a_service_token_without_the_scope_is_a_403(
    client: httpx.AsyncClient, edge: ClientSecret
) -> None:
    token = await service_token(client, edge, resource="auth", scope="mail:notify")
    answer = await read(client, headers=bearer(token))
    assert answer.status_code == 403
    assert answer.json()["code"] == "insufficient_scope"
    challenge = answer.headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="revocations:read"' in challenge


async def test_a_user_token_or_another_audiences_service_token_is_a_401(
    client: httpx.AsyncClient, edge: ClientSecret
) -> None:
    _, _, tokens = await new_user(client)
    not_ours = await service_token(client, edge, resource="mail", scope="revocations:read")
    for token in (tokens["access_token"], not_ours):
        answer = await read(client, headers=bearer(token))
        assert answer.status_code == 401
        assert answer.json()["reason"] == "unknown_feed_token"
        assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]


async def test_a_disabled_clients_token_or_a_revoked_one_is_a_401(
    client: httpx.AsyncClient, services: Services, edge: ClientSecret
) -> None:
    first = await service_token(client, edge, resource="auth", scope="revocations:read")
    second = await service_token(client, edge, resource="auth", scope="revocations:read")
    revoked = await client.post(
        "/revoke", data={"token": second, "token_type_hint": "access_token"}, auth=edge
    )
    assert revoked.status_code == 200
    assert (await read(client, headers=bearer(first))).status_code == 200
    assert (await read(client, headers=bearer(second))).status_code == 401
    await set_disabled(services, EDGE, True)
    answer = await read(client, headers=bearer(first))
    assert answer.status_code == 401
    assert answer.json()["reason"] == "revoked"


async def test_a_re_enabled_client_needs_a_new_token(
    client: httpx.AsyncClient, services: Services, edge: ClientSecret, clock: FakeClock
) -> None:
    before = await service_token(client, edge, resource="auth", scope="revocations:read")
    await set_disabled(services, EDGE, True)
    clock.advance(2 + registry.CLIENT_CACHE_SECONDS)  # past the revocation's reach
    await set_disabled(services, EDGE, False)
    after = await service_token(client, edge, resource="auth", scope="revocations:read")
    assert (await read(client, headers=bearer(before))).status_code == 401
    assert (await read(client, headers=bearer(after))).status_code == 200


async def test_the_feed_documents_the_403(app: FastAPI) -> None:
    async with client_from(app) as http:
        operation = (await http.get("/openapi.json")).json()["paths"]["/revocations"]["get"]
    assert {"401", "403"} <= set(operation["responses"])

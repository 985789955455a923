"""The new kinds of tokens at the endpoints that take any token: ``/introspect`` (RFC 7662) and
``/revoke`` (RFC 7009) know service tokens, exchanged tokens and tokens narrowed to one edge; and
the tokens of a registered confidential client are its own to use and revoke.

In-process: the real app over ASGI, a real SQLite file, the test's clock.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from oidc_helpers import Pkce, authorize_params, code_for, redeem, register_app, sign_in
from service_clients import (
    INTROSPECTION_CLIENTS,
    ClientSecret,
    client_credentials,
    exchange,
    introspect,
    register,
    user_tokens,
)

from auth_service.config import Settings
from auth_service.state import Services


@pytest.fixture
def auth_settings(settings_for: Callable[..., Settings]) -> Settings:
    return settings_for(introspection_clients=INTROSPECTION_CLIENTS)


async def revoke(
    http: httpx.AsyncClient, token: str, auth: ClientSecret | None = None
) -> httpx.Response:
    form = {"token": token, "token_type_hint": "access_token"}
    return await http.post("/revoke", data=form, auth=auth or httpx.USE_CLIENT_DEFAULT)


async def test_a_token_for_one_edge_is_introspected_and_revoked(
    client: httpx.AsyncClient,
) -> None:
    tokens = await user_tokens(client, resource="mail")
    seen = await introspect(client, tokens["access_token"])
    assert (seen["active"], seen["aud"]) == (True, "mail")
    assert (await revoke(client, tokens["access_token"])).status_code == 200
    assert (await introspect(client, tokens["access_token"]))["active"] is False


async def test_a_service_token_is_introspected_and_only_its_client_revokes_it(
    client: httpx.AsyncClient, services: Services
) -> None:
    video = await register(services, "video-svc", audiences=["mail"], scopes=["mail:notify"])
    token = (await client_credentials(client, video)).json()["access_token"]
    seen = await introspect(client, token)
    assert seen["active"] is True
    assert seen["sub"] == seen["client_id"] == "video-svc"
    assert "sid" not in seen
    anonymous = await revoke(client, token)
    assert anonymous.status_code == 400
    assert anonymous.json()["error"] == "unauthorized_client"
    assert (await introspect(client, token))["active"] is True
    assert (await revoke(client, token, video)).status_code == 200
    assert (await introspect(client, token))["active"] is False


async def test_an_exchanged_token_is_introspected_with_its_actor(
    client: httpx.AsyncClient, services: Services
) -> None:
    mail = await register(
        services, "mail-svc", audiences=["video"], scopes=["video:read"], resource="mail"
    )
    tokens = await user_tokens(client)
    exchanged = (await exchange(client, mail, tokens["access_token"], audience="video")).json()
    seen = await introspect(client, exchanged["access_token"])
    assert seen["active"] is True
    assert seen["act"] == {"sub": "mail-svc"}
    assert seen["sid"] == tokens["session_id"]
    await client.post("/logout", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert (await introspect(client, exchanged["access_token"]))["active"] is False


async def test_a_confidential_registered_apps_refresh_token_is_its_own(
    client: httpx.AsyncClient, services: Services
) -> None:
    app_client = await register_app(
        services,
        "photo-app",
        confidential=True,
        audiences=("auth", "video"),
        scopes=("video:read",),
    )
    assert app_client is not None
    pkce = Pkce()
    params = authorize_params(pkce, client_id="photo-app", scope="video:read")
    query = await code_for(client, await sign_in(client, services), params)
    tokens = (await redeem(client, query["code"], pkce, auth=app_client)).json()
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    anonymous = await client.post("/token", data=form)
    assert anonymous.status_code == 400
    assert anonymous.json()["error"] == "invalid_grant"
    refused = await client.post(
        "/revoke", data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"}
    )
    assert refused.status_code == 400
    assert refused.json()["error"] == "unauthorized_client"
    own = await client.post("/token", data=form, auth=app_client)
    assert own.status_code == 200, own.text

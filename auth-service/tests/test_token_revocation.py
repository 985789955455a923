"""``POST /revoke`` (RFC 7009): a refresh token signs its session out, an access token is revoked
alone (here at once, at the edges through the feed), anything else is a 200 that changes nothing,
and a token of another client is refused. In-process over ASGI, on the test's clock.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import httpx
from api_users import bearer, jose_part, login, new_user
from asgi_clients import client_from
from auth_apps import serving
from feed_helpers import MovableClock, caught_up, events_after
from pydantic import SecretStr
from refresh_helpers import refresh

from auth_service.config import Settings

CLIENT_SECRET = "billing-client-secret"


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def test_a_refresh_token_signs_its_session_out(client: httpx.AsyncClient) -> None:
    email, _, tokens = await new_user(client)
    other = await login(client, email)

    revoked = await client.post(
        "/revoke", data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"}
    )

    assert revoked.status_code == 200
    assert revoked.content == b""
    assert revoked.headers["Cache-Control"] == "no-store"
    assert (await refresh(client, tokens["refresh_token"])).json()["error"] == "invalid_grant"
    assert (await client.get("/me", headers=bearer(tokens["access_token"]))).status_code == 401
    # The user's other session is untouched.
    assert (await client.get("/me", headers=bearer(other["access_token"]))).status_code == 200
    sessions = await client.get("/sessions", headers=bearer(other["access_token"]))
    assert [s["id"] for s in sessions.json()] == [other["session_id"]]


async def test_an_access_token_is_revoked_alone_and_once(client: httpx.AsyncClient) -> None:
    _, _, tokens = await new_user(client)
    cursor = await caught_up(client)
    access = tokens["access_token"]

    # The hint is a hint: an access token sent as a refresh token is still found.
    for hint in ("refresh_token", "access_token", None):
        form = {"token": access} | ({"token_type_hint": hint} if hint else {})
        assert (await client.post("/revoke", data=form)).status_code == 200

    assert (await client.get("/me", headers=bearer(access))).status_code == 401
    # The session lives on: a new access token works.
    renewed = (await refresh(client, tokens["refresh_token"])).json()
    assert (await client.get("/me", headers=bearer(renewed["access_token"]))).status_code == 200
    events = await events_after(client, cursor)
    assert [(e["kind"], e["jti"]) for e in events] == [("jti", jose_part(access, 1)["jti"])]


async def test_what_is_not_a_live_token_gets_200_and_changes_nothing(
    client: httpx.AsyncClient, clock: MovableClock
) -> None:
    _, _, tokens = await new_user(client)
    cursor = await caught_up(client)
    forged = tokens["refresh_token"][:-4] + "AAAA"
    clock.advance(3600)  # the access token has expired

    for token in ("garbage", forged, tokens["access_token"], "a.b.c", "x" * 2000):
        answer = await client.post("/revoke", data={"token": token})
        assert answer.status_code == 200, token[:20]

    assert await events_after(client, cursor) == []
    missing = await client.post("/revoke", data={"token_type_hint": "access_token"})
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"


async def test_a_token_of_another_client_is_refused(
    settings_for: Callable[..., Settings], clock: MovableClock
) -> None:
    settings = settings_for(clients={"billing": SecretStr(CLIENT_SECRET)})
    async with serving(settings, clock) as app, client_from(app) as client:
        _, _, tokens = await new_user(client)  # issued to the default public client
        cursor = await caught_up(client)
        wrong_public = await client.post(
            "/revoke", data={"token": tokens["refresh_token"], "client_id": "another-app"}
        )
        confidential = await client.post(
            "/revoke",
            data={"token": tokens["access_token"]},
            headers=basic("billing", CLIENT_SECRET),
        )
        bad_secret = await client.post(
            "/revoke", data={"token": tokens["refresh_token"]}, headers=basic("billing", "wrong")
        )
        assert await events_after(client, cursor) == []
        own = await client.post(
            "/revoke", data={"token": tokens["refresh_token"], "client_id": "gatepass-app"}
        )
        assert own.status_code == 200
        assert len(await events_after(client, cursor)) == 1

    for refused in (wrong_public, confidential):
        assert refused.status_code == 400
        assert refused.json() == {
            "error": "unauthorized_client",
            "error_description": "The token was issued to another client.",
        }
    assert bad_secret.status_code == 401
    assert bad_secret.json()["error"] == "invalid_client"


async def test_introspection_reports_a_revoked_access_token_inactive(
    settings_for: Callable[..., Settings], clock: MovableClock
) -> None:
    settings = settings_for(introspection_clients={"mail": SecretStr(CLIENT_SECRET)})
    async with serving(settings, clock) as app, client_from(app) as client:
        _, _, tokens = await new_user(client)
        introspect = {"token": tokens["access_token"]}
        as_mail = basic("mail", CLIENT_SECRET)
        before = await client.post("/introspect", data=introspect, headers=as_mail)
        await client.post("/revoke", data={"token": tokens["access_token"]})
        after = await client.post("/introspect", data=introspect, headers=as_mail)
    assert before.json()["active"] is True
    assert after.json() == {"active": False}

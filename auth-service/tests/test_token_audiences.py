"""Audience-restricted user tokens (RFC 8707): ``resource`` at login chooses the session's
audiences (default: the client's), ``resource`` at refresh narrows one access token to some of
them, and anything else is ``invalid_target``.

In-process: the real app over ASGI, a real SQLite file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from api_users import jose_part
from asgi_clients import client_from
from auth_apps import serving
from fake_clock import FakeClock
from service_clients import login_body, register
from sqlalchemy import update

from auth_service.config import Settings
from auth_service.models import Session as DeviceSession
from auth_service.state import Services

ALL = ["auth", "mail", "video"]


async def login(http: httpx.AsyncClient, **extra: Any) -> httpx.Response:
    """A fresh user's login, which may be refused; ``extra``: more of its body."""
    return await http.post("/login", json=await login_body(http, **extra))


def audience(answer: httpx.Response) -> list[str]:
    """The ``aud`` of the answer's access token, as a list."""
    aud = jose_part(answer.json()["access_token"], 1)["aud"]
    return [aud] if isinstance(aud, str) else list(aud)


async def refresh(http: httpx.AsyncClient, refresh_token: str, **extra: Any) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    return await http.post("/token", data=form)


async def stored_audiences(services: Services, session_id: str) -> list[str] | None:
    async with services.sessions() as db:
        session = await db.get(DeviceSession, session_id)
        assert session is not None
        return session.audiences


# --- login ---------------------------------------------------------------------------------------


async def test_a_login_without_resource_names_the_app_audiences(
    client: httpx.AsyncClient, services: Services
) -> None:
    answer = await login(client)
    assert answer.status_code == 200, answer.text
    assert audience(answer) == ALL
    assert await stored_audiences(services, answer.json()["session_id"]) == ALL


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ("mail", ["mail"]),
        (["video", "mail"], ["mail", "video"]),
        (["mail", "mail"], ["mail"]),
    ],
    ids=str,
)
async def test_a_login_resource_narrows_the_session(
    client: httpx.AsyncClient, services: Services, resource: Any, expected: list[str]
) -> None:
    answer = await login(client, resource=resource)
    assert answer.status_code == 200, answer.text
    assert audience(answer) == expected
    assert jose_part(answer.json()["access_token"], 1)["aud"] == (
        expected[0] if len(expected) == 1 else expected
    )
    assert await stored_audiences(services, answer.json()["session_id"]) == expected


@pytest.mark.parametrize("resource", ["nosuch", ["mail", "nosuch"], "https://mail.example"])
async def test_an_unknown_resource_at_login_is_invalid_target(
    client: httpx.AsyncClient, services: Services, resource: Any
) -> None:
    answer = await login(client, resource=resource)
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "invalid_target"
    assert "nosuch" not in answer.text
    assert "example" not in answer.text


async def test_a_configured_audience_the_app_may_not_ask_for_is_invalid_target(
    settings_for: Callable[..., Settings], clock: FakeClock
) -> None:
    settings = settings_for(app_audiences=["auth", "mail"])
    async with serving(settings, clock) as app, client_from(app) as http:
        refused = await login(http, resource="video")
        default = await login(http)
    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_target"
    assert audience(default) == ["auth", "mail"]


async def test_a_registered_clients_audiences_are_the_default_and_the_limit(
    client: httpx.AsyncClient, services: Services
) -> None:
    """A confidential client logging its users in (a first-party backend; apps use
    ``/authorize`` instead)."""
    auth = await register(services, "backend", audiences=["auth", "video"], scopes=["video:read"])
    body = await login_body(client, client_id="backend")
    default = await client.post("/login", json=body, auth=auth)
    refused = await client.post("/login", json={**body, "resource": "mail"}, auth=auth)
    assert default.status_code == 200, default.text
    assert audience(default) == ["auth", "video"]
    assert jose_part(default.json()["access_token"], 1)["client_id"] == "backend"
    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_target"


@pytest.mark.parametrize("resource", ["", [], ["mail", ""], "a\nb", ["x" * 201]], ids=repr)
async def test_a_malformed_resource_at_login_is_a_422(
    client: httpx.AsyncClient, resource: Any
) -> None:
    answer = await login(client, resource=resource)
    assert answer.status_code == 422


# --- refresh -------------------------------------------------------------------------------------


async def test_a_refresh_resource_narrows_one_access_token_only(
    client: httpx.AsyncClient,
) -> None:
    tokens = (await login(client)).json()
    narrowed = await refresh(client, tokens["refresh_token"], resource="video")
    assert narrowed.status_code == 200, narrowed.text
    assert audience(narrowed) == ["video"]
    both = await refresh(client, narrowed.json()["refresh_token"], resource=["video", "mail"])
    assert both.status_code == 200, both.text
    assert audience(both) == ["mail", "video"]
    whole = await refresh(client, both.json()["refresh_token"])
    assert audience(whole) == ALL


async def test_a_refresh_keeps_a_narrowed_login_narrow(client: httpx.AsyncClient) -> None:
    tokens = (await login(client, resource=["auth", "mail"])).json()
    again = await refresh(client, tokens["refresh_token"])
    assert audience(again) == ["auth", "mail"]
    refused = await refresh(client, again.json()["refresh_token"], resource="video")
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_target"
    # Refused before anything was spent: the same refresh token still works.
    assert (await refresh(client, again.json()["refresh_token"])).status_code == 200


@pytest.mark.parametrize("resource", ["nosuch", ["mail", "nosuch"]], ids=str)
async def test_an_unknown_resource_at_refresh_is_invalid_target(
    client: httpx.AsyncClient, resource: Any
) -> None:
    tokens = (await login(client)).json()
    refused = await refresh(client, tokens["refresh_token"], resource=resource)
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "invalid_target",
        "error_description": refused.json()["error_description"],
    }
    assert "nosuch" not in refused.text
    assert (await refresh(client, tokens["refresh_token"])).status_code == 200


async def test_scope_and_resource_narrow_together_and_scope_stays_invalid_scope(
    client: httpx.AsyncClient,
) -> None:
    tokens = (await login(client)).json()
    narrowed = await refresh(client, tokens["refresh_token"], scope="video:read", resource="video")
    assert narrowed.status_code == 200, narrowed.text
    claims = jose_part(narrowed.json()["access_token"], 1)
    assert (claims["aud"], claims["scope"]) == ("video", "video:read")
    refused = await refresh(
        client, narrowed.json()["refresh_token"], scope="admin", resource="video"
    )
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_scope"


async def test_a_session_from_before_audiences_gets_the_app_audiences(
    settings_for: Callable[..., Settings], clock: FakeClock
) -> None:
    settings = settings_for(app_audiences=["auth", "video"])
    async with serving(settings, clock) as app, client_from(app) as http:
        tokens = (await login(http, resource="auth")).json()
        services: Services = app.state.services
        async with services.sessions() as db:  # as a row written before the column existed
            await db.execute(
                update(DeviceSession)
                .where(DeviceSession.id == tokens["session_id"])
                .values(audiences=None)
            )
            await db.commit()
        again = await refresh(http, tokens["refresh_token"])
        narrowed = await refresh(http, again.json()["refresh_token"], resource="video")
        refused = await refresh(http, narrowed.json()["refresh_token"], resource="mail")
    assert audience(again) == ["auth", "video"]
    assert audience(narrowed) == ["video"]
    assert refused.json()["error"] == "invalid_target"


async def test_only_resource_and_audience_may_repeat(client: httpx.AsyncClient) -> None:
    tokens = (await login(client)).json()
    body = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    repeated_scope = await client.post("/token", data={**body, "scope": ["mail:read", "admin"]})
    repeated_resource = await client.post("/token", data={**body, "resource": ["mail", "auth"]})
    assert repeated_scope.status_code == 400
    assert repeated_scope.json()["error"] == "invalid_request"
    assert repeated_resource.status_code == 200, repeated_resource.text
    assert audience(repeated_resource) == ["auth", "mail"]

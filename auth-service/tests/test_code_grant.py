"""The ``authorization_code`` grant (RFC 6749 §4.1.3, RFC 7636 §4.5): public and confidential
apps, PKCE, redirect URI, expiry, and a code used twice (RFC 6749 §4.1.2: what it issued is
revoked, and the edges learn it from the revocation feed).
"""

from __future__ import annotations

import httpx
import pytest
from api_users import bearer, jose_part
from fake_clock import FakeClock
from oidc_helpers import (
    CONFIDENTIAL_APP,
    PUBLIC_APP,
    Browser,
    Pkce,
    authorize_params,
    code_for,
    redeem,
    register_app,
    tokens_for,
)
from service_clients import ClientSecret, oauth_error, register
from sqlalchemy import select

from auth_service.models import RevocationEvent, SecurityEvent
from auth_service.state import Services

pytestmark = pytest.mark.usefixtures("oidc_app")


async def _code(client: httpx.AsyncClient, browser: Browser, pkce: Pkce, **params: str) -> str:
    return (await code_for(client, browser, authorize_params(pkce, **params)))["code"]


async def test_a_public_app_gets_tokens_for_its_audiences_and_userinfo(
    client: httpx.AsyncClient, browser: Browser
) -> None:
    body, _ = await tokens_for(client, browser)
    assert body["token_type"] == "Bearer"
    assert set(body) >= {"access_token", "expires_in", "refresh_token", "scope", "id_token"}
    claims = jose_part(body["access_token"], 1)
    assert claims["sub"] == browser.user_id
    assert claims["client_id"] == PUBLIC_APP
    assert claims["aud"] == ["mail", "video", f"{claims['iss']}/userinfo"]
    assert set(claims["scope"].split()) == {"openid", "email"}
    assert body["scope"] == "email openid"
    # The session is the app's own, and refreshes as any other.
    refreshed = await client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "client_id": PUBLIC_APP,
        },
    )
    assert refreshed.status_code == 200, refreshed.text


async def test_scopes_are_within_the_users_roles(
    client: httpx.AsyncClient, browser: Browser
) -> None:
    body, _ = await tokens_for(client, browser, scope="openid mail:read admin unknown:thing")
    assert body["scope"] == "mail:read openid"


async def test_a_refresh_keeps_what_the_sign_in_asked_for(
    client: httpx.AsyncClient, browser: Browser
) -> None:
    """The session keeps the app's scope: a refreshed token still has ``openid`` (so /userinfo
    keeps answering) and never gains the roles' other scopes."""
    body, _ = await tokens_for(client, browser, scope="openid email mail:read")
    refreshed = await client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "client_id": PUBLIC_APP,
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["scope"] == "email mail:read openid"
    claims = jose_part(refreshed.json()["access_token"], 1)
    assert set(claims["scope"].split()) == {"openid", "email", "mail:read"}
    info = await client.get("/userinfo", headers=bearer(refreshed.json()["access_token"]))
    assert info.status_code == 200, info.text
    assert info.json()["sub"] == browser.user_id


async def test_an_apps_token_cannot_manage_the_users_account(
    client: httpx.AsyncClient, browser: Browser
) -> None:
    """Another team's app holding a user's token must not list or sign out their devices, nor
    change their password: its token names /userinfo, not the account routes."""
    body, _ = await tokens_for(client, browser)
    for method, path in (
        ("GET", "/me"),
        ("GET", "/sessions"),
        ("DELETE", f"/sessions/{jose_part(body['access_token'], 1)['sid']}"),
        ("POST", "/logout/all"),
    ):
        answer = await client.request(method, path, headers=bearer(body["access_token"]))
        assert answer.status_code == 401, (method, path)
    assert (await client.get("/userinfo", headers=bearer(body["access_token"]))).status_code == 200


async def test_without_openid_there_is_no_id_token(
    client: httpx.AsyncClient, browser: Browser
) -> None:
    body, _ = await tokens_for(client, browser, scope="mail:read")
    assert "id_token" not in body
    assert body["scope"] == "mail:read"


async def test_a_confidential_app_must_authenticate(
    client: httpx.AsyncClient, services: Services, browser: Browser
) -> None:
    credentials = await register_app(services, CONFIDENTIAL_APP, confidential=True)
    assert isinstance(credentials, ClientSecret)
    pkce = Pkce()
    code = await _code(client, browser, pkce, client_id=CONFIDENTIAL_APP)
    named_only = await redeem(client, code, pkce, client_id=CONFIDENTIAL_APP)
    assert named_only.status_code == 401
    assert oauth_error(named_only) == "invalid_client"
    wrong = await redeem(client, code, pkce, auth=ClientSecret(CONFIDENTIAL_APP, "nope" * 11))
    assert wrong.status_code == 401
    answer = await redeem(client, code, pkce, auth=credentials)
    assert answer.status_code == 200, answer.text
    assert jose_part(answer.json()["access_token"], 1)["client_id"] == CONFIDENTIAL_APP


async def test_another_client_cannot_redeem_the_code(
    client: httpx.AsyncClient, services: Services, browser: Browser
) -> None:
    await register_app(services, "album")
    pkce = Pkce()
    code = await _code(client, browser, pkce)
    answer = await redeem(client, code, pkce, client_id="album")
    assert oauth_error(answer) == "invalid_grant"
    # The code is still good for its own client.
    assert (await redeem(client, code, pkce)).status_code == 200


async def test_no_client_named_is_invalid_request(
    client: httpx.AsyncClient, browser: Browser
) -> None:
    pkce = Pkce()
    code = await _code(client, browser, pkce)
    answer = await client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": authorize_params()["redirect_uri"],
            "code_verifier": pkce.verifier,
        },
    )
    assert oauth_error(answer) == "invalid_request"


async def test_a_service_cannot_use_the_grant(
    client: httpx.AsyncClient, services: Services
) -> None:
    credentials = await register(services, "mail-svc", audiences=["video"], scopes=["video:read"])
    answer = await redeem(client, "x" * 43, Pkce(), auth=credentials)
    assert oauth_error(answer) == "unauthorized_client"


async def test_a_wrong_verifier_or_redirect_uri_is_invalid_grant(
    client: httpx.AsyncClient, browser: Browser
) -> None:
    pkce = Pkce()
    code = await _code(client, browser, pkce)
    for answer in (
        await redeem(client, code, Pkce()),
        await redeem(client, code, Pkce(verifier="short")),
        await redeem(client, code, pkce, redirect_uri="https://photos.example/other"),
        await redeem(client, "A" * 43, pkce),
        await redeem(client, "not a code", pkce),
    ):
        assert answer.status_code == 400
        assert oauth_error(answer) == "invalid_grant"
    missing = await client.post(
        "/token",
        data={"grant_type": "authorization_code", "code": code, "client_id": PUBLIC_APP},
    )
    assert oauth_error(missing) == "invalid_grant"
    # None of those used the code up.
    assert (await redeem(client, code, pkce)).status_code == 200


async def test_an_expired_code_is_invalid_grant(
    client: httpx.AsyncClient, services: Services, clock: FakeClock, browser: Browser
) -> None:
    pkce = Pkce()
    code = await _code(client, browser, pkce)
    clock.advance(services.settings.authorization_code_ttl + 1)
    answer = await redeem(client, code, pkce)
    assert oauth_error(answer) == "invalid_grant"
    assert "expired" in answer.json()["error_description"]


async def test_a_code_used_twice_revokes_what_it_issued(
    client: httpx.AsyncClient, services: Services, browser: Browser
) -> None:
    pkce = Pkce()
    code = await _code(client, browser, pkce)
    first = await redeem(client, code, pkce)
    assert first.status_code == 200, first.text
    tokens = first.json()
    session_id = jose_part(tokens["access_token"], 1)["sid"]

    again = await redeem(client, code, pkce)
    assert again.status_code == 400
    assert oauth_error(again) == "invalid_grant"

    refreshed = await client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": PUBLIC_APP,
        },
    )
    assert oauth_error(refreshed) == "invalid_grant"
    assert (await client.get("/me", headers=bearer(tokens["access_token"]))).status_code == 401
    async with services.sessions() as db:
        events = list(
            await db.scalars(
                select(RevocationEvent).where(
                    RevocationEvent.kind == "session", RevocationEvent.value == session_id
                )
            )
        )
        audit = list(
            await db.scalars(
                select(SecurityEvent).where(SecurityEvent.kind == "authorization_code_reuse")
            )
        )
    assert len(events) == 1
    assert len(audit) == 1
    assert audit[0].session_id == session_id
    # The browser's own sign-in is left alone.
    assert (await client.get("/app", headers=browser.headers)).status_code == 200


async def test_a_code_of_a_signed_out_browser_is_refused(
    client: httpx.AsyncClient, browser: Browser
) -> None:
    pkce = Pkce()
    code = await _code(client, browser, pkce)
    token = browser.cookie.split("=", 1)[1]
    assert (await client.post("/logout", headers=bearer(token))).status_code == 204
    assert oauth_error(await redeem(client, code, pkce)) == "invalid_grant"

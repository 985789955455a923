"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): ``/end-session`` with an
``id_token_hint`` signs out the hinted session and the browser's own, then goes back to a
registered post-logout URI with ``state``; anything else is a page."""

from __future__ import annotations

import re

import httpx
import pytest
from api_users import bearer, jose_part
from oidc_helpers import (
    LOGOUT_URI,
    PUBLIC_APP,
    Browser,
    query_of,
    register_app,
    sign_in,
    tokens_for,
)
from service_clients import oauth_error
from sqlalchemy import select

from auth_service.csrf import csrf_cookie_name
from auth_service.models import RevocationEvent
from auth_service.state import Services

pytestmark = pytest.mark.usefixtures("oidc_app")


def _browser_token(browser: Browser) -> str:
    return browser.cookie.split("=", 1)[1]


async def test_a_hint_signs_out_and_goes_back_with_state(
    client: httpx.AsyncClient, services: Services, browser: Browser
) -> None:
    body, _ = await tokens_for(client, browser)
    app_session = jose_part(body["access_token"], 1)["sid"]
    browser_session = jose_part(_browser_token(browser), 1)["sid"]
    answer = await client.get(
        "/end-session",
        params={
            "id_token_hint": body["id_token"],
            "post_logout_redirect_uri": LOGOUT_URI,
            "state": "s-123",
        },
        headers=browser.headers,
    )
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert location.startswith(LOGOUT_URI + "?")
    assert query_of(location) == {"state": "s-123"}
    cleared = answer.headers.get_list("set-cookie")
    assert any(cookie.startswith(browser.cookie.split("=")[0] + "=") for cookie in cleared)
    # Both sessions are over, here and (through the feed) at the edges.
    refreshed = await client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "client_id": PUBLIC_APP,
        },
    )
    assert oauth_error(refreshed) == "invalid_grant"
    assert (await client.get("/me", headers=bearer(_browser_token(browser)))).status_code == 401
    async with services.sessions() as db:
        revoked = set(
            await db.scalars(select(RevocationEvent.value).where(RevocationEvent.kind == "session"))
        )
    assert {app_session, browser_session} <= revoked


async def test_a_hint_without_a_post_logout_uri_shows_a_page(
    client: httpx.AsyncClient, browser: Browser
) -> None:
    body, _ = await tokens_for(client, browser)
    answer = await client.post(
        "/end-session", data={"id_token_hint": body["id_token"]}, headers=browser.headers
    )
    assert answer.status_code == 200
    assert "signed out" in answer.text
    assert (
        oauth_error(
            await client.post(
                "/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": body["refresh_token"],
                    "client_id": PUBLIC_APP,
                },
            )
        )
        == "invalid_grant"
    )


async def test_an_unregistered_post_logout_uri_is_refused(
    client: httpx.AsyncClient, browser: Browser
) -> None:
    body, _ = await tokens_for(client, browser)
    for uri in ("https://evil.example/", LOGOUT_URI + "/", "https://photos.example/callback"):
        answer = await client.get(
            "/end-session",
            params={"id_token_hint": body["id_token"], "post_logout_redirect_uri": uri},
            headers=browser.headers,
        )
        assert answer.status_code == 400
        assert "location" not in answer.headers
        assert "evil.example" not in answer.text
    # Nothing was signed out.
    assert (await client.get("/userinfo", headers=bearer(body["access_token"]))).status_code == 200


async def test_a_bad_hint_is_refused(client: httpx.AsyncClient, browser: Browser) -> None:
    answer = await client.get(
        "/end-session",
        params={"id_token_hint": _browser_token(browser), "post_logout_redirect_uri": LOGOUT_URI},
    )
    assert answer.status_code == 400
    assert "location" not in answer.headers


async def test_a_client_id_other_than_the_hints_is_refused(
    client: httpx.AsyncClient, services: Services, browser: Browser
) -> None:
    await register_app(services, "album")
    body, _ = await tokens_for(client, browser)
    answer = await client.get(
        "/end-session",
        params={
            "id_token_hint": body["id_token"],
            "client_id": "album",
            "post_logout_redirect_uri": LOGOUT_URI,
        },
    )
    assert answer.status_code == 400


async def test_without_a_hint_the_person_confirms(
    client: httpx.AsyncClient, browser: Browser
) -> None:
    params = {"client_id": PUBLIC_APP, "post_logout_redirect_uri": LOGOUT_URI, "state": "s"}
    page = await client.get("/end-session", params=params, headers=browser.headers)
    assert page.status_code == 200
    assert 'action="/end-session"' in page.text
    assert "https://photos.example" in page.headers["content-security-policy"]
    # Nothing happened yet.
    assert (await client.get("/me", headers=bearer(_browser_token(browser)))).status_code == 200
    # A post without the page's token is refused.
    forged = await client.post("/end-session", data=params, headers=browser.headers)
    assert forged.status_code == 403
    assert (await client.get("/me", headers=bearer(_browser_token(browser)))).status_code == 200


async def test_the_confirmed_post_signs_the_browser_out(
    client: httpx.AsyncClient, services: Services, browser: Browser
) -> None:
    params = {"client_id": PUBLIC_APP, "post_logout_redirect_uri": LOGOUT_URI, "state": "s"}
    page = await client.get("/end-session", params=params, headers=browser.headers)
    found = re.search(r'name="csrf_token" value="([A-Za-z0-9_-]+)"', page.text)
    assert found is not None
    token = found.group(1)
    cookies = f"{browser.cookie}; {csrf_cookie_name(services.settings)}={token}"
    answer = await client.post(
        "/end-session", data={**params, "csrf_token": token}, headers={"Cookie": cookies}
    )
    assert answer.status_code == 303
    assert query_of(answer.headers["location"]) == {"state": "s"}
    assert (await client.get("/me", headers=bearer(_browser_token(browser)))).status_code == 401


# --- a hint that is not this browser's user: the person is asked (RP-Initiated Logout 1.0 §2) -----


async def test_another_users_hint_leaves_the_browser_signed_in_until_it_confirms(
    client: httpx.AsyncClient, services: Services, browser: Browser
) -> None:
    """A red team's logout CSRF: any valid ID token (an attacker's own) as the hint cleared the
    cookies of whichever browser followed the link, without asking, though its session lived
    on. A hint that is not this browser's user now gets the confirmation page, and nothing
    changes until the person confirms."""
    attacker, _ = await tokens_for(client, await sign_in(client, services))
    params = {"id_token_hint": attacker["id_token"], "post_logout_redirect_uri": LOGOUT_URI}
    page = await client.get("/end-session", params=params, headers=browser.headers)
    assert page.status_code == 200
    assert 'action="/end-session"' in page.text
    access_cookie = browser.cookie.split("=")[0] + "="
    assert not any(c.startswith(access_cookie) for c in page.headers.get_list("set-cookie"))
    assert (await client.get("/me", headers=bearer(_browser_token(browser)))).status_code == 200
    assert (
        await client.get("/userinfo", headers=bearer(attacker["access_token"]))
    ).status_code == 200


async def test_a_hint_with_no_signed_in_browser_is_confirmed_first(
    client: httpx.AsyncClient, services: Services, browser: Browser
) -> None:
    """Holding a user's ID token is not being that user: with no browser of theirs signed in,
    the hint's session ends only once the person confirms (and then it does)."""
    body, _ = await tokens_for(client, browser)
    asked = await client.get("/end-session", params={"id_token_hint": body["id_token"]})
    assert asked.status_code == 200
    assert 'action="/end-session"' in asked.text
    assert (await client.get("/userinfo", headers=bearer(body["access_token"]))).status_code == 200
    found = re.search(r'name="csrf_token" value="([A-Za-z0-9_-]+)"', asked.text)
    assert found is not None
    cookie = f"{csrf_cookie_name(services.settings)}={found.group(1)}"
    confirmed = await client.post(
        "/end-session",
        data={"id_token_hint": body["id_token"], "csrf_token": found.group(1)},
        headers={"Cookie": cookie},
    )
    assert confirmed.status_code == 200
    assert "signed out" in confirmed.text
    refresh = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
    refused = await client.post("/token", data={**refresh, "client_id": PUBLIC_APP})
    assert oauth_error(refused) == "invalid_grant"

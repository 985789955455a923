"""``/userinfo`` (OpenID Connect Core §5.3): a user's access token with ``openid``; RFC 6750
errors otherwise."""

from __future__ import annotations

import httpx
import pytest
from api_users import bearer
from oidc_helpers import PUBLIC_APP, Browser, tokens_for
from service_clients import register, service_token

from auth_service.state import Services

pytestmark = pytest.mark.usefixtures("oidc_app")


async def test_with_the_email_scope_the_address_comes_too(
    client: httpx.AsyncClient, browser: Browser
) -> None:
    body, _ = await tokens_for(client, browser, scope="openid email")
    for method in ("GET", "POST"):
        answer = await client.request(method, "/userinfo", headers=bearer(body["access_token"]))
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "sub": browser.user_id,
            "email": browser.email,
            "email_verified": False,
        }
        assert answer.headers["cache-control"] == "no-store"


async def test_without_it_only_the_subject(client: httpx.AsyncClient, browser: Browser) -> None:
    body, _ = await tokens_for(client, browser, scope="openid")
    answer = await client.get("/userinfo", headers=bearer(body["access_token"]))
    assert answer.json() == {"sub": browser.user_id}


async def test_a_token_without_openid_is_insufficient_scope(
    client: httpx.AsyncClient, browser: Browser
) -> None:
    body, _ = await tokens_for(client, browser, scope="mail:read")
    answer = await client.get("/userinfo", headers=bearer(body["access_token"]))
    assert answer.status_code == 403
    assert 'error="insufficient_scope"' in answer.headers["www-authenticate"]


async def test_a_token_not_for_userinfo_is_refused(
    client: httpx.AsyncClient, browser: Browser
) -> None:
    """A password login's token names the account routes' audience, not /userinfo's."""
    token = browser.cookie.split("=", 1)[1]
    answer = await client.get("/userinfo", headers=bearer(token))
    assert answer.status_code == 401
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]


async def test_no_token_or_a_bad_one_is_401(client: httpx.AsyncClient) -> None:
    answer = await client.get("/userinfo")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    answer = await client.get("/userinfo", headers=bearer("not.a.token"))
    assert answer.status_code == 401
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]


async def test_a_service_token_is_refused(client: httpx.AsyncClient, services: Services) -> None:
    credentials = await register(
        services, "mail-svc", audiences=["auth"], scopes=["revocations:read"]
    )
    token = await service_token(client, credentials)
    # A service cannot even ask for /userinfo's audience: its token is not for it.
    assert (await client.get("/userinfo", headers=bearer(token))).status_code == 401


async def test_a_signed_out_session_is_refused(client: httpx.AsyncClient, browser: Browser) -> None:
    body, _ = await tokens_for(client, browser)
    revoked = await client.post(
        "/revoke", data={"token": body["refresh_token"], "client_id": PUBLIC_APP}
    )
    assert revoked.status_code == 200
    assert (await client.get("/userinfo", headers=bearer(body["access_token"]))).status_code == 401

"""A red team's attacks on the OpenID Connect provider and the web page, each a regression test:
what broke (an app holding the admin API, a sign-in marker carried over to a later request, a
500 and a widened CSP from a crafted ``return_to``, an edge's answer read whole before its size
was checked) and what held (redirect URI tricks, malformed requests, cross-origin reads).

In-process: the real app over ASGI, a real SQLite file, the test's clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote, unquote, urlencode

import httpx
import pytest
from api_users import PASSWORD, bearer
from fake_clock import FakeClock
from oidc_helpers import (
    PUBLIC_APP,
    REDIRECT_URI,
    Browser,
    Pkce,
    authorize,
    authorize_params,
    query_of,
    register_app,
    sign_in,
    tokens_for,
)
from web_helpers import browser_app, script_post, sign_up

from auth_service import accounts
from auth_service.state import Services

pytestmark = pytest.mark.usefixtures("oidc_app")


# --- an app signs users in through /authorize, never with their password -------------------------


@pytest.mark.parametrize("confidential", [False, True])
async def test_an_app_cannot_take_a_password_at_the_login_route(
    client: httpx.AsyncClient, services: Services, confidential: bool
) -> None:
    """``POST /login`` naming an app handed it the user's every scope under the app's id (a
    moderator's ``mail:send``, an administrator's ``admin``) where the app is registered for
    less: a password grant for apps, which gatepass does not have. An app, public or
    confidential, is refused before the password is checked, and no session is opened."""
    await accounts.signup(services, "mod@example.com", PASSWORD, roles=["moderator"])
    secret = await register_app(services, "password-app", confidential=confidential)
    body = {"email": "mod@example.com", "password": PASSWORD, "client_id": "password-app"}
    answer = await client.post("/login", json=body, auth=secret or httpx.USE_CLIENT_DEFAULT)
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "unauthorized_client"
    assert answer.headers["content-type"] == "application/problem+json"
    assert "access_token" not in answer.text
    mod = await client.post("/login", json={"email": "mod@example.com", "password": PASSWORD})
    sessions = await client.get("/sessions", headers=bearer(mod.json()["access_token"]))
    assert [s["client_id"] for s in sessions.json()] == [services.settings.default_client_id]


def _login_return_to(answer: httpx.Response) -> str:
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith("/app/login?return_to="), location
    return unquote(location.removeprefix("/app/login?return_to="))


# --- an app never holds the auth service's admin API ---------------------------------------------


@pytest.mark.parametrize("scope", ["openid admin", None])
async def test_an_app_never_gets_the_admin_scope_of_an_administrator(
    client: httpx.AsyncClient, services: Services, scope: str | None
) -> None:
    """An administrator signing in to another team's app must not hand that app a token for the
    admin API: an app holds only the scopes it is registered for, and its tokens do not name the
    auth service's own routes at all (``/userinfo`` has an audience of its own)."""
    await accounts.signup(services, "root@example.com", PASSWORD, roles=["admin"])
    admin = await sign_in(client, services, "root@example.com")
    body, _ = await tokens_for(client, admin, scope=scope)
    assert "admin" not in body["scope"].split()
    answer = await client.get("/admin/users", headers=bearer(body["access_token"]))
    assert answer.status_code == 401
    refreshed = await client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "client_id": "photos",
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    assert "admin" not in refreshed.json()["scope"].split()


# --- the sign-in marker fits its own request alone -----------------------------------------------


async def test_a_marker_of_an_earlier_request_of_the_same_app_skips_nothing(
    client: httpx.AsyncClient, services: Services, clock: FakeClock
) -> None:
    """A marker made for one request, carried over to a later ``prompt=login`` / ``max_age=0``
    request of the same app, must not let a sign-in of minutes ago answer it."""
    first = await sign_in(client, services)
    clock.advance(30)
    return_to = _login_return_to(await authorize(client, first, authorize_params(prompt="login")))
    marker = query_of(return_to)["auth_after"]
    clock.advance(5)
    again: Browser = await sign_in(client, services, first.email)  # the sign-in it asked for
    assert (await authorize(client, again, query_of(return_to))).status_code == 303
    clock.advance(120)
    later = authorize_params(prompt="login", max_age="0", auth_after=marker)
    _login_return_to(await authorize(client, again, later))


async def test_the_marker_still_answers_its_own_request(
    client: httpx.AsyncClient, services: Services, clock: FakeClock
) -> None:
    first = await sign_in(client, services)
    clock.advance(30)
    params = authorize_params(prompt="login", max_age="0")
    return_to = _login_return_to(await authorize(client, first, params))
    clock.advance(5)
    again = await sign_in(client, services, first.email)
    answer = await authorize(client, again, query_of(return_to))
    assert answer.status_code == 303
    assert "code" in query_of(answer.headers["location"])


# --- the login page's form-action ----------------------------------------------------------------


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://\u2603.example/cb",  # not Latin-1: the header could not be encoded (a 500)
        "https://\u00fc.example/cb",  # Latin-1, not ASCII: a raw byte in the header
        "https://*/cb",  # a wildcard: form-action to any https origin
        "https://*.example/cb",
        "https://a.example%20https://evil.example/cb",
    ],
)
async def test_a_crafted_return_to_cannot_break_or_widen_the_login_pages_policy(
    client: httpx.AsyncClient, redirect_uri: str
) -> None:
    return_to = "/authorize?response_type=code&client_id=photos&redirect_uri=" + quote(
        redirect_uri, safe=""
    )
    for page in ("/app/login", "/app/signup"):
        answer = await client.get(page, params={"return_to": return_to})
        assert answer.status_code == 200
        policy = answer.headers["content-security-policy"]
        assert policy.endswith("form-action 'self'"), policy


async def test_a_registered_ports_origin_is_still_a_form_target(client: httpx.AsyncClient) -> None:
    for uri, origin in (
        ("http://127.0.0.1:8400/cb", "http://127.0.0.1:8400"),
        ("http://[::1]:8400/cb", "http://[::1]:8400"),
        ("https://photos.example/cb", "https://photos.example"),
    ):
        return_to = "/authorize?redirect_uri=" + quote(uri, safe="")
        answer = await client.get("/app/login", params={"return_to": return_to})
        assert answer.headers["content-security-policy"].endswith(f"form-action 'self' {origin}")


# --- what held -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "redirect_uri",
    [
        REDIRECT_URI + "/",
        REDIRECT_URI.upper(),
        "https://PHOTOS.example/callback",
        "https://x@photos.example/callback",
        "https://photos.example@evil.example/callback",
        REDIRECT_URI + "?x=1",
        REDIRECT_URI + "#x",
        "https://photos.example/%63allback",
        "https://photos.example:443/callback",
        REDIRECT_URI + "%00",
        "https://photos.example\\@evil.example/callback",
        "https://xn--phtos-jua.example/callback",
    ],
)
async def test_a_redirect_uri_like_the_registered_one_is_a_page(
    client: httpx.AsyncClient, services: Services, redirect_uri: str
) -> None:
    browser = await sign_in(client, services)
    answer = await authorize(client, browser, authorize_params(redirect_uri=redirect_uri))
    assert answer.status_code == 400
    assert "location" not in answer.headers


@pytest.mark.parametrize(
    ("method", "content_type", "body"),
    [
        ("POST", "application/x-www-form-urlencoded", b"client_id=\xff\xfe"),
        ("POST", "text/plain", b"client_id=photos"),
        ("POST", "application/json", b'{"client_id": "photos"}'),
        ("POST", "application/x-www-form-urlencoded", b"a=1&" * 100),
        ("GET", None, b""),
    ],
)
async def test_malformed_requests_to_the_browser_endpoints_are_pages_not_500s(
    client: httpx.AsyncClient, method: str, content_type: str | None, body: bytes
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    for path in ("/authorize", "/end-session"):
        answer = await client.request(method, path, content=body, headers=headers)
        assert answer.status_code in (200, 400), (path, answer.status_code)
        assert "location" not in answer.headers
    for query in ("client_id=%FF", "client_id=a&client_id=b", "id_token_hint=%FF.%FF.%FF"):
        for path in ("/authorize", "/end-session"):
            answer = await client.get(f"{path}?{query}")
            assert answer.status_code in (200, 400), (path, query, answer.status_code)
            assert "location" not in answer.headers


async def test_cors_names_registered_origins_only_and_never_credentials(
    client: httpx.AsyncClient,
) -> None:
    for origin in ("null", "https://photos.example.evil.example", "https://evil.example"):
        answer = await client.options(
            "/token", headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
        )
        assert answer.status_code == 403
        assert "access-control-allow-origin" not in answer.headers
    answer = await client.get("/userinfo", headers={"Origin": "https://photos.example"})
    assert answer.headers["access-control-allow-origin"] == "https://photos.example"
    assert "access-control-allow-credentials" not in answer.headers


# --- the page's calls read a bounded answer ------------------------------------------------------


class _Endless(httpx.AsyncByteStream):
    """An edge's answer that never ends: how much of it was read."""

    def __init__(self) -> None:
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunk = b" " * 65536
        while self.sent < 64 * 1024 * 1024:
            self.sent += len(chunk)
            yield chunk


async def test_an_edges_oversized_answer_is_not_read_whole(
    tmp_path: Path, clock: FakeClock
) -> None:
    stream = _Endless()

    def edge(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "application/json"}, stream=stream)

    calls = {"mail": "http://mail.test/me"}
    transport = httpx.MockTransport(edge)
    async with browser_app(tmp_path, clock, page_calls=calls, transport=transport) as (_, http):
        await sign_up(http, "ada@example.com")
        answer = await script_post(http, "/app/api/call/mail")
        assert answer.status_code == 502
        assert answer.json()["code"] == "bad_gateway"
        assert stream.sent <= 1024 * 1024


async def test_the_sign_out_page_names_no_application_it_cannot_vouch_for(
    client: httpx.AsyncClient,
) -> None:
    """Without a registered post-logout URI nothing vouches for ``client_id``: the confirmation
    page must not say that some application (any text) asks the person to sign out."""
    answer = await client.get("/end-session", params={"client_id": "Your bank"})
    assert answer.status_code == 200
    assert "Your bank" not in answer.text
    assert "An application asks you to sign out" in answer.text


async def test_the_hosted_sign_in_page_names_the_registered_app_alone(
    client: httpx.AsyncClient,
) -> None:
    """The person sees which app they sign in to; a name no registration vouches for is not
    shown (it could be any text)."""
    pkce = Pkce()
    answer = await client.get("/authorize", params=authorize_params(pkce))
    page = await client.get(answer.headers["location"])
    assert page.status_code == 200
    assert f'to continue to <strong class="app-name">{PUBLIC_APP}</strong>' in page.text
    forged = "/authorize?" + urlencode({"client_id": "Your bank", "response_type": "code"})
    page = await client.get("/app/login", params={"return_to": forged})
    assert page.status_code == 200
    assert "Your bank" not in page.text

"""The authorization endpoint (OpenID Connect Core §3.1.2, RFC 6749 §4.1.1, RFC 7636): what it
sends to the redirect URI, what it shows instead, and when it asks the browser to sign in.

In-process: the real app over ASGI, a real SQLite file, the test's clock. The browser is signed in
with a password login's access token in its cookie, as the hosted login page leaves it.
"""

from __future__ import annotations

from urllib.parse import unquote

import httpx
import pytest
from asgi_clients import BASE_URL
from fake_clock import FakeClock
from oidc_helpers import (
    PUBLIC_APP,
    REDIRECT_URI,
    Browser,
    Pkce,
    authorize,
    authorize_params,
    code_for,
    query_of,
    register_app,
    sign_in,
)
from service_clients import register, set_disabled

from auth_service.state import Services

pytestmark = pytest.mark.usefixtures("oidc_app")


def _refused_at_redirect(answer: httpx.Response, error: str, state: str | None) -> dict[str, str]:
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT_URI + "?")
    query = query_of(location)
    assert query["error"] == error
    assert query["iss"] == BASE_URL  # RFC 9207
    assert query.get("state") == state
    assert "code" not in query
    return query


def _page(answer: httpx.Response) -> str:
    """A refusal shown to the person: a 400 page, and no redirect anywhere."""
    assert answer.status_code == 400
    assert "location" not in answer.headers
    assert answer.headers["content-type"].startswith("text/html")
    return answer.text


async def test_a_signed_in_browser_gets_a_code_with_state_and_iss(
    client: httpx.AsyncClient, browser: Browser
) -> None:
    params = authorize_params()
    query = await code_for(client, browser, params)
    assert query["state"] == params["state"]
    assert query["iss"] == BASE_URL
    assert len(query["code"]) == 43  # 256 bits, base64url


async def test_the_redirect_uri_keeps_its_own_query(
    client: httpx.AsyncClient, services: Services, browser: Browser
) -> None:
    with_query = "https://photos.example/cb?tenant=a"
    await register_app(services, "album", redirect_uris=(with_query,))
    query = await code_for(
        client, browser, authorize_params(client_id="album", redirect_uri=with_query)
    )
    assert query["tenant"] == "a"


async def test_a_wrong_redirect_uri_is_a_page_never_a_redirect(
    client: httpx.AsyncClient, browser: Browser
) -> None:
    for uri in (
        "https://evil.example/callback",
        REDIRECT_URI + "/",  # compared exactly
        REDIRECT_URI.upper(),
        REDIRECT_URI + "?x=1",
    ):
        text = _page(await authorize(client, browser, authorize_params(redirect_uri=uri)))
        assert "redirect URI" in text
        assert "evil.example" not in text
    _page(await authorize(client, browser, authorize_params(redirect_uri=None)))


async def test_an_unknown_client_is_a_page_that_echoes_nothing(
    client: httpx.AsyncClient, browser: Browser
) -> None:
    text = _page(
        await authorize(client, browser, authorize_params(client_id="<script>alert(1)</script>"))
    )
    assert "<script>alert" not in text
    _page(await authorize(client, browser, authorize_params(client_id=None)))


async def test_a_service_or_disabled_app_cannot_be_authorized(
    client: httpx.AsyncClient, services: Services, browser: Browser
) -> None:
    await register(services, "mail-svc", audiences=["video"], scopes=["video:read"])
    _page(await authorize(client, browser, authorize_params(client_id="mail-svc")))
    await set_disabled(services, PUBLIC_APP, True)
    _page(await authorize(client, browser, authorize_params()))


async def test_a_repeated_parameter_is_refused(client: httpx.AsyncClient, browser: Browser) -> None:
    params: list[tuple[str, str | int | float | bool | None]] = [
        *authorize_params().items(),
        ("scope", "openid"),
    ]
    answer = await client.get("/authorize", params=params, headers=browser.headers)
    _page(answer)


async def test_missing_pkce_is_invalid_request(client: httpx.AsyncClient, browser: Browser) -> None:
    params = authorize_params(code_challenge=None)
    answer = await authorize(client, browser, params)
    _refused_at_redirect(answer, "invalid_request", params["state"])


async def test_the_plain_method_is_refused(client: httpx.AsyncClient, browser: Browser) -> None:
    pkce = Pkce()
    for method in ("plain", None):  # absent means plain (RFC 7636 §4.3)
        params = authorize_params(code_challenge=pkce.verifier[:43], code_challenge_method=method)
        answer = await authorize(client, browser, params)
        _refused_at_redirect(answer, "invalid_request", params["state"])


async def test_only_response_type_code(client: httpx.AsyncClient, browser: Browser) -> None:
    for response_type in ("token", "id_token", "code id_token"):
        params = authorize_params(response_type=response_type)
        answer = await authorize(client, browser, params)
        _refused_at_redirect(answer, "unsupported_response_type", params["state"])
    params = authorize_params(response_type=None)
    _refused_at_redirect(
        await authorize(client, browser, params), "invalid_request", params["state"]
    )


async def test_a_malformed_scope_is_invalid_scope(
    client: httpx.AsyncClient, browser: Browser
) -> None:
    params = authorize_params(scope="openid  email")
    _refused_at_redirect(await authorize(client, browser, params), "invalid_scope", params["state"])


async def test_prompt_none_without_a_session_is_login_required(
    client: httpx.AsyncClient,
) -> None:
    params = authorize_params(prompt="none")
    answer = await authorize(client, None, params)
    _refused_at_redirect(answer, "login_required", params["state"])


async def test_without_a_session_the_browser_goes_to_the_login_page(
    client: httpx.AsyncClient, services: Services, clock: FakeClock
) -> None:
    params = authorize_params()
    answer = await authorize(client, None, params)
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert location.startswith("/app/login?return_to=")
    return_to = unquote(location.removeprefix("/app/login?return_to="))
    assert return_to.startswith("/authorize?")
    # Signed in, the browser comes back to the same request and gets its code.
    clock.advance(5)
    browser = await sign_in(client, services)
    answer = await client.get(return_to, headers=browser.headers)
    assert answer.status_code == 303
    query = query_of(answer.headers["location"])
    assert query["state"] == params["state"]
    assert "code" in query


def _return_to(answer: httpx.Response) -> str:
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith("/app/login?return_to="), location
    return unquote(location.removeprefix("/app/login?return_to="))


async def test_prompt_login_asks_for_a_new_sign_in(
    client: httpx.AsyncClient, services: Services, clock: FakeClock, browser: Browser
) -> None:
    return_to = _return_to(await authorize(client, browser, authorize_params(prompt="login")))
    assert "prompt" not in query_of(return_to)
    clock.advance(5)
    # Back without signing in again: the old sign-in does not count.
    _return_to(await client.get(return_to, headers=browser.headers))
    # Signed in again after the login page was shown: it counts.
    again = await sign_in(client, services, browser.email)
    answer = await client.get(return_to, headers=again.headers)
    assert "code" in query_of(answer.headers["location"])


async def test_max_age_asks_for_a_new_sign_in_when_the_session_is_older(
    client: httpx.AsyncClient, services: Services, clock: FakeClock, browser: Browser
) -> None:
    clock.advance(30)
    await code_for(client, browser, authorize_params(max_age="60"))
    clock.advance(60)
    return_to = _return_to(await authorize(client, browser, authorize_params(max_age="60")))
    clock.advance(2)
    again = await sign_in(client, services, browser.email)
    answer = await client.get(return_to, headers=again.headers)
    assert "code" in query_of(answer.headers["location"])


async def test_max_age_zero_is_met_by_the_sign_in_it_asked_for(
    client: httpx.AsyncClient, services: Services, clock: FakeClock, browser: Browser
) -> None:
    return_to = _return_to(await authorize(client, browser, authorize_params(max_age="0")))
    clock.advance(1)
    again = await sign_in(client, services, browser.email)
    clock.advance(3)  # the login took a while: no loop back to the login page
    answer = await client.get(return_to, headers=again.headers)
    assert "code" in query_of(answer.headers["location"])


async def test_a_forged_sign_in_marker_skips_nothing(
    client: httpx.AsyncClient, clock: FakeClock, browser: Browser
) -> None:
    clock.advance(120)
    for marker in ("0", "0.AAAAAAAAAAAAAAAAAAAAAA", f"{int(clock().timestamp() * 1000)}.x"):
        params = authorize_params(max_age="60", auth_after=marker)
        _return_to(await authorize(client, browser, params))


async def test_a_marker_of_another_request_skips_nothing(
    client: httpx.AsyncClient, services: Services, clock: FakeClock, browser: Browser
) -> None:
    await register_app(services, "album")
    return_to = _return_to(await authorize(client, browser, authorize_params(prompt="login")))
    marker = query_of(return_to)["auth_after"]
    clock.advance(5)
    other = authorize_params(client_id="album", prompt="login", auth_after=marker)
    _return_to(await authorize(client, browser, other))


async def test_a_post_authorization_request_is_served(
    client: httpx.AsyncClient, browser: Browser
) -> None:
    params = authorize_params()
    answer = await client.post("/authorize", data=params, headers=browser.headers)
    assert answer.status_code == 303
    query = query_of(answer.headers["location"])
    assert query["state"] == params["state"]
    assert "code" in query


@pytest.mark.parametrize(
    ("extra", "refreshes"),
    [({}, True), ({"prompt": "login"}, False), ({"max_age": "3600"}, False)],
)
async def test_the_sign_in_page_may_refresh_a_session_unless_a_new_sign_in_is_demanded(
    client: httpx.AsyncClient, extra: dict[str, str], refreshes: bool
) -> None:
    """Nobody signed in (as far as the access cookie says): any live session answers a plain
    request, so the page's script first tries the refresh cookie and goes back to the request;
    a request demanding a new sign-in carries a marker no refreshed session can meet."""
    answer = await client.get("/authorize", params=authorize_params(Pkce(), **extra))
    assert answer.status_code == 303
    return_to = unquote(answer.headers["location"].split("return_to=", 1)[1])
    assert ("auth_after=" in return_to) is not refreshes
    page = await client.get(answer.headers["location"])
    assert page.status_code == 200
    assert ('data-try-refresh="1"' in page.text) is refreshes

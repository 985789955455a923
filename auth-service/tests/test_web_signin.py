"""The hosted sign-up and sign-in forms: what a browser posts (the CSRF token read from the
page), the cookies it gets back, the errors it shows the person, and where it goes next."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from fake_clock import FakeClock
from web_helpers import PASSWORD, browser_app, log_in, set_cookies, sign_up

SIGNUP_EMAIL = "ada@example.com"
AUTHORIZE = "/authorize?response_type=code&client_id=app&redirect_uri=https%3A%2F%2Frp.example%2Fcb"


async def test_signup_through_the_form_signs_in_with_http_only_cookies(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with browser_app(tmp_path, clock) as (_app, http):
        answer = await sign_up(http, SIGNUP_EMAIL)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/app"
        cookies = set_cookies(answer)
        access, refresh, csrf = cookies["gp_access"], cookies["gp_refresh"], cookies["gp_csrf"]
        assert access.attributes["path"] == "/"
        assert access.attributes["samesite"].lower() == "lax"
        assert access.attributes["max-age"] == "300"
        assert refresh.attributes["path"] == "/app/refresh"
        assert refresh.attributes["samesite"].lower() == "strict"
        assert refresh.attributes["max-age"] == str(90 * 24 * 3600)
        assert csrf.attributes["samesite"].lower() == "strict"
        for cookie in (access, refresh, csrf):
            assert cookie.has("httponly")
            assert not cookie.has("secure")  # cookie_secure off: development on plain http
        page = await http.get("/app")
        assert SIGNUP_EMAIL in page.text
        assert "Signed in as" in page.text


async def test_secure_cookies_carry_their_prefixes(tmp_path: Path, clock: FakeClock) -> None:
    async with browser_app(tmp_path, clock, secure=True) as (_app, http):
        answer = await sign_up(http, SIGNUP_EMAIL)
        assert answer.status_code == 303, answer.text
        cookies = set_cookies(answer)
        assert set(cookies) == {"__Host-gp_access", "__Secure-gp_refresh", "__Host-gp_csrf"}
        for cookie in cookies.values():
            assert cookie.has("secure")
            assert cookie.has("httponly")
        assert cookies["__Host-gp_access"].attributes["path"] == "/"  # what __Host- requires
        assert "domain" not in cookies["__Host-gp_access"].attributes
        assert cookies["__Secure-gp_refresh"].attributes["path"] == "/app/refresh"
        page = await http.get("/app")
        assert SIGNUP_EMAIL in page.text


async def test_login_through_the_form(tmp_path: Path, clock: FakeClock) -> None:
    async with browser_app(tmp_path, clock) as (_app, http):
        await sign_up(http, SIGNUP_EMAIL)
        http.cookies.clear()
        answer = await log_in(http, SIGNUP_EMAIL)
        assert answer.status_code == 303
        assert {"gp_access", "gp_refresh", "gp_csrf"} <= set(set_cookies(answer))
        page = await http.get("/app")
        assert SIGNUP_EMAIL in page.text


async def test_a_wrong_password_is_shown_in_the_page(tmp_path: Path, clock: FakeClock) -> None:
    async with browser_app(tmp_path, clock) as (_app, http):
        await sign_up(http, SIGNUP_EMAIL)
        http.cookies.clear()
        answer = await log_in(http, SIGNUP_EMAIL, "not the password at all")
        assert answer.status_code == 401
        assert answer.headers["content-type"].startswith("text/html")
        assert 'role="alert"' in answer.text
        assert "The email or the password is wrong." in answer.text
        assert "not the password at all" not in answer.text
        assert "gp_access" not in set_cookies(answer)


async def test_too_many_wrong_passwords_say_how_long_to_wait(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with browser_app(tmp_path, clock, throttle_pair_free=1) as (_app, http):
        await sign_up(http, SIGNUP_EMAIL)
        http.cookies.clear()
        statuses = [(await log_in(http, SIGNUP_EMAIL, "wrong password 1")).status_code]
        answer = await log_in(http, SIGNUP_EMAIL, "wrong password 2")
        statuses.append(answer.status_code)
        if answer.status_code != 429:
            answer = await log_in(http, SIGNUP_EMAIL, "wrong password 3")
        assert answer.status_code == 429, statuses
        assert int(answer.headers["retry-after"]) >= 1
        assert 'role="alert"' in answer.text
        assert "try again in" in answer.text


@pytest.mark.parametrize(
    ("password", "words"),
    [("short", "at least"), ("password123", "")],
)
async def test_a_refused_signup_says_why(
    tmp_path: Path, clock: FakeClock, password: str, words: str
) -> None:
    async with browser_app(tmp_path, clock) as (_app, http):
        answer = await sign_up(http, SIGNUP_EMAIL, password)
        assert answer.status_code == 422
        assert 'role="alert"' in answer.text
        assert words in answer.text
        assert SIGNUP_EMAIL in answer.text  # the email is kept in the form
        assert "gp_access" not in set_cookies(answer)


async def test_a_taken_email_is_said_in_the_page(tmp_path: Path, clock: FakeClock) -> None:
    async with browser_app(tmp_path, clock) as (_app, http):
        await sign_up(http, SIGNUP_EMAIL)
        http.cookies.clear()
        answer = await sign_up(http, SIGNUP_EMAIL, PASSWORD + " again")
        assert answer.status_code == 409
        assert 'role="alert"' in answer.text
        assert "already exists" in answer.text


async def test_missing_fields_are_said_in_the_page(tmp_path: Path, clock: FakeClock) -> None:
    async with browser_app(tmp_path, clock) as (_app, http):
        answer = await log_in(http, "", "")
        assert answer.status_code == 422
        assert 'role="alert"' in answer.text


async def test_the_sign_in_continues_to_an_authorization_request(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with browser_app(tmp_path, clock) as (_app, http):
        page = await http.get("/app/login?return_to=" + quote(AUTHORIZE, safe=""))
        assert f'name="return_to" value="{AUTHORIZE.replace("&", "&amp;")}"' in page.text
        # The redirect the authorization request ends in is a form target too (Chromium checks
        # form-action along the redirect chain of a form's post).
        assert page.headers["content-security-policy"].endswith(
            "form-action 'self' https://rp.example"
        )
        answer = await sign_up(http, SIGNUP_EMAIL, return_to=AUTHORIZE)
        assert answer.status_code == 303
        assert answer.headers["location"] == AUTHORIZE
        http.cookies.clear()
        answer = await log_in(http, SIGNUP_EMAIL, return_to=AUTHORIZE)
        assert answer.headers["location"] == AUTHORIZE


@pytest.mark.parametrize(
    "return_to",
    [
        "https://evil.example/authorize?x=1",
        "//evil.example/authorize?x=1",
        "/\\evil.example/authorize?",
        "/app/logout",
        "/authorize",
        "/authorizeX?a=1",
        "/authorize?a=1\r\nLocation: https://evil.example",
        "",
    ],
)
async def test_any_other_return_to_goes_to_the_page(
    tmp_path: Path, clock: FakeClock, return_to: str
) -> None:
    async with browser_app(tmp_path, clock) as (_app, http):
        page = await http.get("/app/login", params={"return_to": return_to})
        assert 'name="return_to"' not in page.text
        answer = await sign_up(http, SIGNUP_EMAIL, return_to=return_to)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/app"

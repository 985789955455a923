"""CSRF: every unsafe request under /app must come from the service's own page: the token
equal to the cookie, no foreign Origin, no cross-site Sec-Fetch-Site. A form's refusal is a
page, a script's is problem JSON."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_clock import FakeClock
from fastapi import Request, Response
from web_helpers import browser_app, form_csrf, page_csrf, sign_up

from auth_service.browser import check_csrf, install_csrf_handler
from auth_service.csrf import issuer_origin

EMAIL = "kim@example.com"
FORM = {"email": EMAIL, "password": "correct horse battery staple 42"}


async def test_a_form_without_the_token_is_refused_with_a_page(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with browser_app(tmp_path, clock) as (_app, http):
        await http.get("/app/signup")  # the cookie, but no token in the post
        answer = await http.post("/app/signup", data=FORM)
        assert answer.status_code == 403
        assert answer.headers["content-type"].startswith("text/html")
        assert 'role="alert"' in answer.text
        assert "gp_access" not in answer.headers.get("set-cookie", "")


async def test_a_wrong_token_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    async with browser_app(tmp_path, clock) as (_app, http):
        await http.get("/app/login")
        answer = await http.post("/app/login", data={**FORM, "csrf_token": "x" * 43})
        assert answer.status_code == 403


async def test_a_token_without_its_cookie_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    async with browser_app(tmp_path, clock) as (_app, http):
        token = form_csrf((await http.get("/app/login")).text)
        http.cookies.clear()
        answer = await http.post("/app/login", data={**FORM, "csrf_token": token})
        assert answer.status_code == 403


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://auth.test:8080"},
        {"Sec-Fetch-Site": "cross-site"},
    ],
)
async def test_a_cross_site_post_is_refused_even_with_the_token(
    tmp_path: Path, clock: FakeClock, headers: dict[str, str]
) -> None:
    async with browser_app(tmp_path, clock) as (_app, http):
        token = form_csrf((await http.get("/app/signup")).text)
        answer = await http.post("/app/signup", data={**FORM, "csrf_token": token}, headers=headers)
        assert answer.status_code == 403
        assert "gp_access" not in answer.headers.get("set-cookie", "")


async def test_a_same_origin_post_passes(tmp_path: Path, clock: FakeClock) -> None:
    async with browser_app(tmp_path, clock) as (_app, http):
        token = form_csrf((await http.get("/app/signup")).text)
        answer = await http.post(
            "/app/signup",
            data={**FORM, "csrf_token": token},
            headers={"Origin": "http://auth.test", "Sec-Fetch-Site": "same-origin"},
        )
        assert answer.status_code == 303


@pytest.mark.parametrize(
    "path", ["/app/logout", "/app/refresh/logout", "/app/refresh", "/app/api/call/mail"]
)
async def test_a_scripts_post_without_the_header_gets_problem_json(
    tmp_path: Path, clock: FakeClock, path: str
) -> None:
    async with browser_app(tmp_path, clock, page_calls={"mail": "http://mail.test/inbox"}) as (
        _app,
        http,
    ):
        await sign_up(http, EMAIL)
        answer = await http.post(path)
        assert answer.status_code == 403
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["code"] == "csrf_failed"
        wrong = await http.post(path, headers={"X-CSRF-Token": "y" * 43})
        assert wrong.status_code == 403
        # The session lives on: nothing was done.
        assert "Signed in as" in (await http.get("/app")).text


async def test_a_device_sign_out_from_another_site_does_nothing(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with browser_app(tmp_path, clock) as (_app, http):
        await sign_up(http, EMAIL)
        page = await http.get("/app")
        answer = await http.post(
            "/app/logout",
            headers={"X-CSRF-Token": page_csrf(page.text), "Sec-Fetch-Site": "cross-site"},
        )
        assert answer.status_code == 403
        assert "Signed in as" in (await http.get("/app")).text


async def test_the_token_is_the_cookies_across_pages(tmp_path: Path, clock: FakeClock) -> None:
    async with browser_app(tmp_path, clock) as (_app, http):
        first = form_csrf((await http.get("/app/login")).text)
        assert form_csrf((await http.get("/app/signup")).text) == first
        assert page_csrf((await http.get("/app")).text) == first


def test_the_issuers_origin() -> None:
    assert issuer_origin("https://auth.example.com") == "https://auth.example.com"
    assert issuer_origin("https://Auth.Example.com:443/base") == "https://auth.example.com"
    assert issuer_origin("http://127.0.0.1:8000") == "http://127.0.0.1:8000"
    assert issuer_origin("http://[::1]:8000") == "http://[::1]:8000"


async def test_other_routes_check_with_the_same_function(tmp_path: Path, clock: FakeClock) -> None:
    """What the OpenID Connect routes do (POST /authorize, /end-session): ``check_csrf``, its
    refusal a page for a form once the app installs the handler, problem JSON otherwise."""

    async def guarded(request: Request) -> Response:
        await check_csrf(request, None)  # a form of theirs would pass its csrf_token field
        return Response(status_code=204)

    async with browser_app(tmp_path, clock) as (app, http):
        app.add_api_route("/guarded", guarded, methods=["POST"])
        install_csrf_handler(app)
        token = page_csrf((await http.get("/app")).text)
        as_form = await http.post("/guarded", data={"x": "1"})
        assert as_form.status_code == 403
        assert as_form.headers["content-type"].startswith("text/html")
        assert as_form.headers["content-security-policy"].startswith("default-src 'self'")
        as_script = await http.post("/guarded", json={})
        assert as_script.status_code == 403
        assert as_script.json()["code"] == "csrf_failed"
        passed = await http.post("/guarded", headers={"X-CSRF-Token": token})
        assert passed.status_code == 204

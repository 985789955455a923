"""The browser's session: refresh rotates both cookies, logout revokes the session (the edges
hear of it) and clears them."""

from __future__ import annotations

import re
from pathlib import Path

from api_users import bearer
from fake_clock import FakeClock
from web_helpers import browser_app, page_csrf, script_post, set_cookies, sign_up

EMAIL = "lin@example.com"


async def test_refresh_rotates_both_cookies(tmp_path: Path, clock: FakeClock) -> None:
    async with browser_app(tmp_path, clock) as (_app, http):
        signed = set_cookies(await sign_up(http, EMAIL))
        clock.advance(10)
        answer = await script_post(http, "/app/refresh")
        assert answer.status_code == 204
        rotated = set_cookies(answer)
        assert rotated["gp_access"].value != signed["gp_access"].value
        assert rotated["gp_refresh"].value != signed["gp_refresh"].value
        assert rotated["gp_refresh"].attributes["path"] == "/app/refresh"
        assert "Signed in as" in (await http.get("/app")).text
        # The old refresh token is spent: presented again, the session is revoked (reuse).
        page = await http.get("/app")
        http.cookies.set("gp_refresh", signed["gp_refresh"].value, path="/app/refresh")
        clock.advance(60)
        reused = await http.post("/app/refresh", headers={"X-CSRF-Token": page_csrf(page.text)})
        assert reused.status_code == 401
        assert reused.json()["code"] == "not_signed_in"


async def test_refresh_without_a_session_is_401_and_clears_cookies(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with browser_app(tmp_path, clock) as (_app, http):
        answer = await script_post(http, "/app/refresh")
        assert answer.status_code == 401
        assert answer.headers["content-type"] == "application/problem+json"
        cleared = set_cookies(answer)
        assert cleared["gp_access"].attributes["max-age"] == "0"
        assert cleared["gp_refresh"].attributes["path"] == "/app/refresh"


async def test_logout_revokes_the_session_and_clears_the_cookies(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with browser_app(tmp_path, clock) as (_app, http):
        access = set_cookies(await sign_up(http, EMAIL))["gp_access"].value
        assert (await http.get("/me", headers=bearer(access))).status_code == 200
        page = await http.get("/app")
        answer = await http.post("/app/logout", data={"csrf_token": page_csrf(page.text)})
        assert answer.status_code == 303
        assert answer.headers["location"] == "/app"
        cleared = set_cookies(answer)
        assert cleared["gp_access"].attributes["max-age"] == "0"
        assert cleared["gp_refresh"].attributes["max-age"] == "0"
        assert cleared["gp_refresh"].attributes["path"] == "/app/refresh"
        assert cleared["gp_csrf"].value != page_csrf(page.text)  # a new token after a sign-out
        assert (await http.get("/me", headers=bearer(access))).status_code == 401
        assert "Signed in as" not in (await http.get("/app")).text
        assert (await script_post(http, "/app/refresh")).status_code == 401


async def test_the_scripts_logout_without_an_access_token_asks_for_a_refresh(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with browser_app(tmp_path, clock) as (_app, http):
        await sign_up(http, EMAIL)
        page = await http.get("/app")
        http.cookies.delete("gp_access")  # run out, as the browser drops it at its Max-Age
        headers = {"X-CSRF-Token": page_csrf(page.text)}
        assert (await http.post("/app/logout", headers=headers)).status_code == 401
        refreshed = await http.post("/app/refresh", headers=headers)
        assert refreshed.status_code == 204
        assert (await http.post("/app/logout", headers=headers)).status_code == 204
        # The session is revoked, not just forgotten: its refresh token no longer works.
        kept = set_cookies(refreshed)["gp_refresh"].value
        http.cookies.set("gp_refresh", kept, domain="auth.test", path="/app/refresh")
        assert (await script_post(http, "/app/refresh")).status_code == 401


async def test_the_log_out_form_ends_the_session_once_the_access_cookie_ran_out(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A browser without script: the page was loaded signed in, and the access cookie ran out
    before the person clicked "Log out". The form's post still ends the session (by the refresh
    cookie, which its path reaches), not just the cookies: a copy of the refresh token taken
    earlier no longer works."""
    async with browser_app(tmp_path, clock) as (_app, http):
        signed = set_cookies(await sign_up(http, EMAIL))
        page = await http.get("/app")
        action = re.search(
            r'<form method="post" action="([^"]+)" data-post="/app/logout"', page.text
        )
        assert action is not None
        http.cookies.delete("gp_access")  # run out, as the browser drops it at its Max-Age
        answer = await http.post(action.group(1), data={"csrf_token": page_csrf(page.text)})
        assert answer.status_code == 303
        assert answer.headers["location"] == "/app"
        assert set_cookies(answer)["gp_refresh"].attributes["max-age"] == "0"
        copy = signed["gp_refresh"].value
        http.cookies.set("gp_refresh", copy, domain="auth.test", path="/app/refresh")
        assert (await script_post(http, "/app/refresh")).status_code == 401


async def test_logging_out_by_the_refresh_cookie_is_csrf_checked(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with browser_app(tmp_path, clock) as (_app, http):
        await sign_up(http, EMAIL)
        http.cookies.delete("gp_access")
        refused = await http.post("/app/refresh/logout", data={"csrf_token": "forged"})
        assert refused.status_code == 403
        assert (await script_post(http, "/app/refresh")).status_code == 204

"""The web page: signed out and signed in, the token taken apart (never whole), the devices,
the page's headers and static files."""

from __future__ import annotations

import html
import json
from pathlib import Path

from api_users import jose_part
from asgi_clients import client_from
from fake_clock import FakeClock
from web_helpers import browser_app, browser_client, log_in, set_cookies, sign_up

EMAIL = "grace@example.com"
CSP = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"


async def test_signed_out_page_links_to_sign_in_and_up(tmp_path: Path, clock: FakeClock) -> None:
    async with browser_app(tmp_path, clock) as (_app, http):
        page = await http.get("/app")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == CSP
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["cache-control"] == "no-store"
        assert 'href="/app/login"' in page.text
        assert 'href="/app/signup"' in page.text
        assert "<script>" not in page.text
        assert "style=" not in page.text
        assert "gp_csrf" in set_cookies(page)  # the token its forms will need


async def test_signed_in_page_takes_the_token_apart_without_holding_it(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with browser_app(tmp_path, clock) as (_app, http):
        answer = await sign_up(http, EMAIL)
        token = set_cookies(answer)["gp_access"].value
        header, payload, signature = token.split(".")
        page = (await http.get("/app")).text
        assert EMAIL in page
        assert token not in page
        assert signature not in page
        assert f"{signature[:12]}…</code> ({len(signature)} characters)" in page
        shown = html.unescape(page)
        for name, value in jose_part(token, 0).items():
            assert f'"{name}": {json.dumps(value)}' in shown
        claims = jose_part(token, 1)
        assert claims["sub"] in page
        assert claims["sid"] in page
        for sentence in ("anyone holding the token can read it", "public keys"):
            assert sentence in page
        assert header not in page
        assert payload not in page


async def test_devices_list_marks_this_one_and_signs_another_out(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with browser_app(tmp_path, clock) as (app, http):
        await sign_up(http, EMAIL)
        async with browser_client(app, ip="10.0.0.7") as other:
            await log_in(other, EMAIL)
            other_page = await other.get("/app")
            assert "Signed in as" in other_page.text
            page = (await http.get("/app")).text
            assert page.count("/sign-out") == 4  # two devices: action and data-post each
            assert page.count("this device") >= 1
            assert "10.0.0.7" in page
            mine = set_cookies(await http.get("/app"))  # nothing new set on a plain view
            assert "gp_access" not in mine
            other_id = _session_id(other_page.text)
            answer = await http.post(
                f"/app/api/devices/{other_id}/sign-out",
                data={"csrf_token": _form_token(page)},
            )
            assert answer.status_code == 303
            assert answer.headers["location"] == "/app"
            # Signed out at once on the service's own pages, whatever the token's lifetime left.
            assert "Signed in as" not in (await other.get("/app")).text
            assert "10.0.0.7" not in (await http.get("/app")).text


async def test_signing_this_device_out_clears_its_cookies(tmp_path: Path, clock: FakeClock) -> None:
    async with browser_app(tmp_path, clock) as (_app, http):
        await sign_up(http, EMAIL)
        page = (await http.get("/app")).text
        answer = await http.post(
            f"/app/api/devices/{_session_id(page)}/sign-out",
            headers={"X-CSRF-Token": _form_token(page)},
        )
        assert answer.status_code == 204
        cleared = set_cookies(answer)
        assert cleared["gp_access"].attributes["max-age"] == "0"
        assert "Signed in as" not in (await http.get("/app")).text


async def test_another_users_device_is_not_found(tmp_path: Path, clock: FakeClock) -> None:
    async with browser_app(tmp_path, clock) as (app, http):
        await sign_up(http, EMAIL)
        async with browser_client(app) as mallory:
            await sign_up(mallory, "mallory@example.com")
            theirs = _session_id((await mallory.get("/app")).text)
        page = (await http.get("/app")).text
        answer = await http.post(
            f"/app/api/devices/{theirs}/sign-out", headers={"X-CSRF-Token": _form_token(page)}
        )
        assert answer.status_code == 404
        assert answer.headers["content-type"] == "application/problem+json"


async def test_static_files(tmp_path: Path, clock: FakeClock) -> None:
    async with browser_app(tmp_path, clock) as (app, _http), client_from(app) as http:
        css = await http.get("/app/static/app.css")
        script = await http.get("/app/static/app.js")
        missing = await http.get("/app/static/..%2Fcsrf.py")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "X-CSRF-Token" in script.text
    assert missing.status_code == 404


def _form_token(page: str) -> str:
    marker = 'name="csrf_token" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


def _session_id(page: str) -> str:
    """This device's session id, from its sign-out form."""
    row = page[page.index('class="current"') :]
    start = row.index("/app/api/devices/") + len("/app/api/devices/")
    return row[start : row.index("/sign-out", start)]

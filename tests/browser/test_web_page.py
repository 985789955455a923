"""The auth service's web page, used in Chromium as a person would.

Sign up, sign out, sign in again with the keyboard, read the access token taken apart, call
mail and video through the page, see the devices; a second browser (another device) signs in,
the first signs it out, and the second's next call fails within the revocation bound; log out.
A form on another site that posts to ``/app/logout`` is refused and the session lives on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import STEP_TIMEOUT_MS, Shots, Stack
from tests.browser.flows import REVOCATION_WAIT, refused_within, sign_in_on_page
from tests.support.auth_client import STRONG_PASSWORD, bearer, new_email, signup


def access_cookie(context: BrowserContext) -> str:
    """The access token the page's cookie holds (HttpOnly: the page's scripts cannot read it;
    the test reads it to call the edge directly)."""
    for cookie in context.cookies():
        if cookie["name"].endswith("gp_access"):
            return cookie["value"]
    raise AssertionError("no access cookie")


def call_service(page: Page, name: str) -> str:
    """Press "Call <name>" and return what the page shows once the answer is in."""
    page.get_by_role("button", name=f"Call {name}").click()
    result = page.locator("#call-result .answer-status")
    expect(result).not_to_contain_text("Calling", timeout=STEP_TIMEOUT_MS)
    return result.inner_text()


def test_the_page_from_signup_to_logout(
    stack: Stack, chromium: Browser, context: BrowserContext, shots: Shots
) -> None:
    email = new_email("web")
    page = context.new_page()
    page.goto(stack.auth.url("/app"))
    shots(page, "welcome")
    page.get_by_role("link", name="Sign up").click()
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Create the account").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(email)
    shots(page, "signed-up")

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_text("You are not signed in")).to_be_visible()
    page.get_by_role("link", name="Sign in").click()
    page.wait_for_url(stack.auth.url("/app/login"))
    # The keyboard alone: type the email, Tab to the password, Enter sends the form.
    page.get_by_label("Email address").focus()
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    page.keyboard.type(STRONG_PASSWORD)
    shots(page, "login-form")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text(email)
    shots(page, "signed-in")

    # The access token, taken apart: three parts, each with a sentence on it.
    for part in ("Header", "Payload", "Signature"):
        expect(page.get_by_role("heading", name=part, exact=True)).to_be_visible()
    expect(page.get_by_label("The token's header")).to_contain_text('"alg"')
    expect(page.get_by_label("The token's header")).to_contain_text("at+jwt")
    payload = page.get_by_label("The token's payload")
    expect(payload).to_contain_text(f'"iss": "{stack.auth.base_url}"')
    expect(payload).to_contain_text('"sub"')

    # The buttons call mail and video with the session's token; the page shows their answers.
    assert call_service(page, "mail") == "mail answered HTTP 200"
    shots(page, "called-mail")
    assert call_service(page, "video") == "video answered HTTP 200"
    shots(page, "called-video")
    devices = page.locator("section[aria-labelledby=devices-title] tbody tr")
    expect(devices).to_have_count(1)

    # A second device: another browser, the same person.
    other_context = chromium.new_context(locale="en-US", viewport={"width": 1100, "height": 900})
    other_context.set_default_timeout(STEP_TIMEOUT_MS)
    try:
        other = other_context.new_page()
        other.goto(stack.auth.url("/app/login"))
        sign_in_on_page(other, email)
        expect(other.get_by_role("heading", level=1)).to_contain_text(email)
        assert call_service(other, "mail") == "mail answered HTTP 200"
        other_token = access_cookie(other_context)
        shots(other, "second-device")

        page.reload()
        expect(devices).to_have_count(2)
        shots(page, "two-devices")
        page.locator("section[aria-labelledby=devices-title] tbody tr:not(.current)").get_by_role(
            "button"
        ).click()
        expect(devices).to_have_count(1)
        shots(page, "signed-the-other-out")

        # The other device's next call fails, and the page says the session is over; the mail
        # edge itself refuses its token within the revocation bound (told by the feed).
        started = time.monotonic()
        shown = call_service(other, "mail")
        while "signed out" not in shown and time.monotonic() - started < REVOCATION_WAIT:
            shown = call_service(other, "mail")
        shots(other, "second-device-signed-out")
        assert "signed out" in shown, shown
        refused_within(lambda: httpx.get(stack.mail.url("/inbox"), headers=bearer(other_token)))
    finally:
        other_context.close()

    # The first device still works; then it logs out, and its token stops working everywhere.
    assert call_service(page, "video") == "video answered HTTP 200"
    token = access_cookie(context)
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_text("You are not signed in")).to_be_visible()
    shots(page, "logged-out")
    assert not any(c["name"].endswith("gp_access") for c in context.cookies())
    refused_within(lambda: httpx.get(stack.video.url("/videos"), headers=bearer(token)))


class _Attacker(BaseHTTPRequestHandler):
    """Another site's page: a form that posts to the auth service's logout."""

    target = ""

    def do_GET(self) -> None:
        body = (
            "<!doctype html><title>Win a prize</title>"
            f'<form method="post" action="{self.target}">'
            '<input type="hidden" name="csrf_token" value="a-guess">'
            "<button>Claim the prize</button></form>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads the browser, not this log."""


@pytest.fixture
def other_site(stack: Stack) -> Iterator[str]:
    """``http://localhost:<port>/``: another site than the issuer's 127.0.0.1 (a site is the
    scheme and host, whatever the port)."""
    handler = type("Attacker", (_Attacker,), {"target": stack.auth.url("/app/logout")})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_a_form_on_another_site_cannot_log_the_person_out(
    stack: Stack, context: BrowserContext, other_site: str, shots: Shots
) -> None:
    email = new_email("csrf")
    with httpx.Client(base_url=stack.auth.base_url, timeout=30) as client:
        signup(client, email)
    page = context.new_page()
    page.goto(stack.auth.url("/app/login"))
    sign_in_on_page(page, email)
    expect(page.get_by_role("heading", level=1)).to_contain_text(email)

    # The cookies as the spec sets them (development: without Secure and the name prefixes).
    cookies = {cookie["name"]: cookie for cookie in context.cookies(stack.auth.base_url + "/app")}
    assert cookies["gp_access"]["httpOnly"]
    assert cookies["gp_access"]["sameSite"] == "Lax"
    assert cookies["gp_csrf"]["httpOnly"]
    assert cookies["gp_csrf"]["sameSite"] == "Strict"
    refresh = {c["name"]: c for c in context.cookies(stack.auth.url("/app/refresh"))}["gp_refresh"]
    assert refresh["path"] == "/app/refresh"
    assert refresh["httpOnly"]
    assert refresh["sameSite"] == "Strict"

    attacker = context.new_page()
    attacker.goto(other_site)
    shots(attacker, "other-site")
    with attacker.expect_response(stack.auth.url("/app/logout")) as posted:
        attacker.get_by_role("button", name="Claim the prize").click()
    answer = posted.value
    assert answer.status == 403
    # SameSite=Lax kept the session's cookies off the cross-site post anyway.
    assert "gp_access" not in answer.request.all_headers().get("cookie", "")
    expect(attacker.get_by_role("alert")).to_be_visible()  # said to the person, not raw JSON
    shots(attacker, "refused")

    page.reload()
    expect(page.get_by_role("heading", level=1)).to_contain_text(email)
    assert call_service(page, "mail") == "mail answered HTTP 200"
    shots(page, "still-signed-in")

"""Relying parties nobody here wrote sign a person in through the whole code flow, in Chromium.

panva's ``openid-client`` (node, a public client) and authlib's Starlette integration (Python,
``client_secret_basic``) know only the issuer's URL: discovery gives them the endpoints, the
ID token's algorithm and the keys that verify it. Each sends Chromium to ``/authorize`` with
PKCE S256, ``state`` and ``nonce``; the person signs in on the hosted login page (the keyboard
sends the form); the RP redeems the code, validates the ID token and shows its claims. The node
RP then signs out through the ``end_session_endpoint`` and comes back to its post-logout URI,
after which the tokens it held are refused by ``/userinfo`` and by the mail edge (through the
revocation feed, within its bound). A tampered ``state`` is refused by authlib itself.

The negative cases of the protocol are checked over plain httpx against the same running stack:
a redirect URI that is not registered gets an error page and never a redirect; a missing or
wrong PKCE verifier and a replayed code are refused with the standard's errors, and the replay
revokes what the code's first redemption issued.
"""

from __future__ import annotations

import httpx
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import Shots, Stack
from tests.browser.flows import (
    authorize_query,
    code_for,
    error_of,
    pkce_pair,
    query_of,
    redeem,
    refused_within,
    sign_in_on_page,
    sign_in_over_http,
)
from tests.support.auth_client import bearer, jose_part, new_email, signup
from tests.support.procs import ServiceProcess


def new_person(stack: Stack) -> tuple[str, str]:
    """A fresh account (through the JSON API: the RPs' tests are about signing in): email, id."""
    email = new_email("rp")
    with httpx.Client(base_url=stack.auth.base_url, timeout=30) as client:
        return email, signup(client, email)


def sign_in_through(page: Page, rp: ServiceProcess, stack: Stack, email: str, shots: Shots) -> None:
    """From the RP's home page through /authorize and the hosted login page, back to the RP."""
    page.goto(rp.url("/"))
    shots(page, "rp-home")
    page.locator("#login").click()
    page.wait_for_url(f"{stack.auth.base_url}/app/login**")
    shots(page, "hosted-login")
    sign_in_on_page(page, email)
    page.wait_for_url(rp.url("/"))
    shots(page, "rp-signed-in")


def claim(page: Page, name: str) -> str:
    return page.locator(f"#claim-{name}").inner_text()


def test_openid_client_signs_in_and_out(
    stack: Stack, node_rp: ServiceProcess, context: BrowserContext, shots: Shots
) -> None:
    email, user_id = new_person(stack)
    page = context.new_page()
    sign_in_through(page, node_rp, stack, email, shots)

    # openid-client validated the ID token (signature by the discovered JWKS, iss, aud, nonce)
    # before it showed these; /userinfo answered for the same subject.
    assert claim(page, "sub") == user_id
    assert claim(page, "iss") == stack.auth.base_url
    assert stack.node_app.client_id in claim(page, "aud")
    assert claim(page, "sid")
    assert page.locator("#userinfo-email").inner_text() == email
    assert page.locator("#id-token-alg").inner_text() == "RS256"

    tokens = httpx.get(node_rp.url("/last-tokens"), timeout=10).json()
    access, id_token = tokens["access_token"], tokens["id_token"]
    assert jose_part(id_token, 0)["typ"] == "JWT"
    assert jose_part(id_token, 1)["sid"] == claim(page, "sid")
    userinfo = httpx.get(stack.auth.url("/userinfo"), headers=bearer(access), timeout=10)
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json()["sub"] == user_id
    inbox = httpx.get(stack.mail.url("/inbox"), headers=bearer(access), timeout=10)
    assert inbox.status_code == 200, inbox.text

    # RP-initiated logout: to the end_session_endpoint with the ID token as hint, back to the
    # RP's registered post-logout URI with its state.
    page.locator("#logout").click()
    page.wait_for_url(f"{node_rp.url('/signed-out')}**")
    shots(page, "rp-signed-out")
    assert page.locator("#state-ok").inner_text() == "true"

    # The session is over everywhere: the issuer refuses the RP's token, and so does the edge,
    # told by the revocation feed within its bound.
    assert httpx.get(stack.auth.url("/userinfo"), headers=bearer(access)).status_code == 401
    refused_within(lambda: httpx.get(stack.mail.url("/inbox"), headers=bearer(access)))
    # And the browser's session at the issuer ended too: signing in again asks for the password.
    page.goto(node_rp.url("/login"))
    page.wait_for_url(f"{stack.auth.base_url}/app/login**")
    shots(page, "asked-to-sign-in-again")


def test_authlib_signs_in(
    stack: Stack, authlib_rp: ServiceProcess, context: BrowserContext, shots: Shots
) -> None:
    email, user_id = new_person(stack)
    page = context.new_page()
    sign_in_through(page, authlib_rp, stack, email, shots)
    # authlib validated the ID token against the discovered JWKS (and its nonce) before this.
    assert claim(page, "sub") == user_id
    assert claim(page, "iss") == stack.auth.base_url
    assert claim(page, "sid")
    assert claim(page, "nonce")

    page.locator("#logout").click()
    page.wait_for_url(f"{authlib_rp.url('/signed-out')}**")
    shots(page, "rp-signed-out")
    assert page.locator("#state-ok").inner_text() == "true"


def test_authlib_refuses_a_tampered_state(
    stack: Stack, authlib_rp: ServiceProcess, context: BrowserContext, shots: Shots
) -> None:
    email, _ = new_person(stack)
    page = context.new_page()
    page.goto(stack.auth.url("/app/login"))
    sign_in_on_page(page, email)
    page.wait_for_url(stack.auth.url("/app"))
    # The RP's redirect to /authorize and the issuer's answer, stopped short of the callback
    # (the context's own requests: same cookies), so the person's browser can be handed a
    # callback whose state someone else chose.
    start = context.request.get(authlib_rp.url("/login"), max_redirects=0)
    assert start.status in (302, 303, 307)
    issued = context.request.get(start.headers["location"], max_redirects=0)
    assert issued.status in (302, 303), issued.text()
    callback = issued.headers["location"]
    assert callback.startswith(authlib_rp.url("/callback?"))
    state = query_of(callback)["state"]
    page.goto(callback.replace(f"state={state}", "state=forged-by-someone-else"))
    shots(page, "mismatching-state")
    assert page.locator("#error").inner_text() == "mismatching_state"
    page.goto(authlib_rp.url("/"))
    assert page.locator("#login").is_visible()  # not signed in
    # The refusal was the state's alone: the callback as the issuer sent it still signs in.
    page.goto(callback)
    page.wait_for_url(authlib_rp.url("/"))
    shots(page, "genuine-callback")
    assert page.locator("#claim-sub").is_visible()


def test_unregistered_redirect_uri_gets_an_error_page_not_a_redirect(
    stack: Stack, context: BrowserContext, shots: Shots
) -> None:
    app = stack.probe_app
    _, challenge = pkce_pair()
    wrong = [
        f"{app.base_url}/elsewhere",
        f"{app.redirect_uri}/",  # exact match: not a prefix
        f"{app.redirect_uri}?next=1",
        "http://127.0.0.1:9/callback",
    ]
    with httpx.Client(base_url=stack.auth.base_url, timeout=30) as client:
        for uri in wrong:
            answer = client.get(authorize_query(app.client_id, uri, challenge))
            assert answer.status_code == 400, (uri, answer.status_code)
            assert "location" not in answer.headers
            assert answer.headers["content-type"].startswith("text/html")
        unknown = client.get(authorize_query("nobody-registered", app.redirect_uri, challenge))
        assert unknown.status_code == 400
        assert "location" not in unknown.headers
    # What the person sees: a page that says so, at the issuer.
    page = context.new_page()
    seen = page.goto(stack.auth.url(authorize_query(app.client_id, wrong[0], challenge)))
    assert seen is not None
    assert seen.status == 400
    assert page.url.startswith(stack.auth.base_url)
    expect(page.get_by_role("alert")).to_contain_text("redirect URI")
    shots(page, "redirect-uri-refused")


def test_pkce_and_code_replay_are_refused(stack: Stack) -> None:
    app, other = stack.probe_app, stack.node_app
    email, _ = new_person(stack)
    with httpx.Client(base_url=stack.auth.base_url, timeout=30) as client:
        sign_in_over_http(client, email)

        # The PKCE method must be S256: plain is refused at the redirect URI.
        verifier, _ = pkce_pair()
        plain = client.get(
            authorize_query(
                app.client_id, app.redirect_uri, verifier, code_challenge_method="plain"
            )
        )
        assert plain.status_code in (302, 303)
        refusal = query_of(plain.headers["location"])
        assert refusal["error"] == "invalid_request"
        assert refusal["iss"] == stack.auth.base_url
        assert "code" not in refusal

        code, _ = code_for(client, app.client_id, app.redirect_uri)
        missing = redeem(client, app.client_id, app.redirect_uri, code, None)
        assert missing.status_code == 400
        assert error_of(missing) in ("invalid_request", "invalid_grant")

        code, _ = code_for(client, app.client_id, app.redirect_uri)
        wrong_verifier, _ = pkce_pair()
        wrong = redeem(client, app.client_id, app.redirect_uri, code, wrong_verifier)
        assert wrong.status_code == 400
        assert error_of(wrong) == "invalid_grant"

        # A code is its client's, for its redirect URI.
        code, verifier = code_for(client, app.client_id, app.redirect_uri)
        stolen = redeem(client, other.client_id, other.redirect_uri, code, verifier)
        assert stolen.status_code == 400
        assert error_of(stolen) == "invalid_grant"

        # Single use: the second redemption is refused, and what the first issued is revoked.
        code, verifier = code_for(client, app.client_id, app.redirect_uri)
        first = redeem(client, app.client_id, app.redirect_uri, code, verifier)
        assert first.status_code == 200, first.text
        issued = first.json()
        assert issued["token_type"].lower() == "bearer"
        assert "id_token" in issued
        access = issued["access_token"]
        assert client.get("/userinfo", headers=bearer(access)).status_code == 200
        assert httpx.get(stack.mail.url("/inbox"), headers=bearer(access)).status_code == 200
        replay = redeem(client, app.client_id, app.redirect_uri, code, verifier)
        assert replay.status_code == 400
        assert error_of(replay) == "invalid_grant"
        assert client.get("/userinfo", headers=bearer(access)).status_code == 401
        refused_within(lambda: httpx.get(stack.mail.url("/inbox"), headers=bearer(access)))
        refreshed = client.post(
            "/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": issued["refresh_token"],
                "client_id": app.client_id,
            },
        )
        assert refreshed.status_code == 400
        assert error_of(refreshed) == "invalid_grant"


def test_a_signed_in_person_is_not_asked_again_once_the_access_cookie_ran_out(
    stack: Stack, node_rp: ServiceProcess, context: BrowserContext, shots: Shots
) -> None:
    """Single sign-on outlives the access cookie (5 minutes): the hosted sign-in page refreshes
    the session once (the refresh cookie reaches /app/refresh alone) and goes back to the
    authorization request, so the app signs the person in without the password typed again."""
    email, user_id = new_person(stack)
    page = context.new_page()
    page.goto(f"{stack.auth.base_url}/app/login")
    sign_in_on_page(page, email)
    page.wait_for_url(f"{stack.auth.base_url}/app")
    shots(page, "signed-in-on-the-page")
    context.clear_cookies(name="gp_access")  # as its Max-Age runs out: the refresh cookie stays
    page.goto(node_rp.url("/"))
    page.locator("#login").click()
    page.wait_for_url(node_rp.url("/"))
    shots(page, "rp-signed-in-without-the-password")
    assert claim(page, "sub") == user_id

"""Steps the browser tests share: signing in on the hosted page (in Chromium or over httpx),
PKCE, authorization requests, and waiting for a revocation to reach a service.

The hosted login page's form is the spec's: fields ``email``, ``password``, ``csrf_token``,
``return_to``, posted to ``/app/login``.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from playwright.sync_api import Page

from tests.support.auth_client import STRONG_PASSWORD

# The revocation bound is a second; a step waits twice that before it calls a token still alive.
REVOCATION_WAIT = 2.0
_CSRF_INPUT = re.compile(r"<input\b[^>]*\bname=\"csrf_token\"[^>]*>")
_VALUE = re.compile(r"\bvalue=\"([^\"]*)\"")


def sign_in_on_page(page: Page, email: str, password: str = STRONG_PASSWORD) -> None:
    """Fill the hosted login form and send it with the keyboard (Enter in the password field)."""
    page.locator('input[name="email"]').fill(email)
    password_field = page.locator('input[name="password"]')
    password_field.fill(password)
    password_field.press("Enter")


def pkce_pair() -> tuple[str, str]:
    """A code verifier (RFC 7636 §4.1: 43 characters of base64url) and its S256 challenge."""
    verifier = secrets.token_urlsafe(32)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorize_query(client_id: str, redirect_uri: str, challenge: str, **extra: str) -> str:
    """``/authorize?...`` for a code request with PKCE S256, ``openid``, a state and a nonce."""
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid email mail:read",
        "state": secrets.token_urlsafe(12),
        "nonce": secrets.token_urlsafe(12),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return f"/authorize?{urlencode(params)}"


def sign_in_over_http(client: httpx.Client, email: str, password: str = STRONG_PASSWORD) -> None:
    """What a browser does on the hosted login page, with httpx: read the form's CSRF token
    (its cookie lands in the client's jar), post the form; the session cookies follow."""
    form = client.get("/app/login")
    assert form.status_code == 200, form.text
    match = _CSRF_INPUT.search(form.text)
    assert match is not None, "the login page has no csrf_token field"
    value = _VALUE.search(match.group(0))
    assert value is not None
    answer = client.post(
        "/app/login",
        data={"email": email, "password": password, "csrf_token": value.group(1)},
    )
    assert answer.status_code == 303, answer.text


def query_of(location: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


def code_for(client: httpx.Client, client_id: str, redirect_uri: str) -> tuple[str, str]:
    """A fresh authorization code for the signed-in ``client`` and its PKCE verifier."""
    verifier, challenge = pkce_pair()
    answer = client.get(authorize_query(client_id, redirect_uri, challenge))
    assert answer.status_code in (302, 303), answer.text
    location = answer.headers["location"]
    assert location.startswith(f"{redirect_uri}?"), location
    return query_of(location)["code"], verifier


def redeem(
    client: httpx.Client, client_id: str, redirect_uri: str, code: str, verifier: str | None
) -> httpx.Response:
    """The token request of a public client for ``code`` (no verifier when ``None``)."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": client_id,
    }
    if verifier is not None:
        form["code_verifier"] = verifier
    return client.post("/token", data=form)


def error_of(response: httpx.Response) -> Any:
    return response.json().get("error")


def refused_within(call: Callable[[], httpx.Response], seconds: float = REVOCATION_WAIT) -> float:
    """Call until the answer is 401; how long that took (a failure past ``seconds``)."""
    started = time.monotonic()
    while True:
        status = call().status_code
        waited = time.monotonic() - started
        if status == 401:
            return waited
        assert waited < seconds, f"still {status} after {waited:.2f} s"
        time.sleep(0.05)

"""Signup, login and ``/me`` seen by a client: the token's shape, clear refusals, the back-off
that spares the owner, and no secret in a log line. In-process, over ASGI.

The app's clock starts at the real time here (and stands still): ``verify_with_jwks`` checks the
token with PyJWT, which reads the real time.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

import httpx
import pytest
from api_users import (
    PASSWORD,
    bearer,
    jose_part,
    login,
    new_email,
    new_user,
    signup,
    verify_with_jwks,
)
from asgi_clients import client_from
from auth_apps import ServiceClock, serving
from fastapi import FastAPI

from auth_service.config import Settings
from gatepass.logs import JsonFormatter, TextFormatter


class NowClock(ServiceClock, Protocol):
    now: datetime


@pytest.fixture
def clock(clock: NowClock) -> NowClock:
    clock.now = datetime.now(UTC).replace(microsecond=0)
    return clock


async def test_signup_login_and_me(client: httpx.AsyncClient) -> None:
    email = new_email()
    created = await client.post(
        "/signup", json={"email": f"  {email.upper()} ", "password": PASSWORD}
    )
    assert created.status_code == 201
    assert created.json()["email"] == email  # normalised: trimmed, lowercased
    tokens = await login(client, email)
    assert set(tokens) >= {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "session_id",
    }
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 300
    assert len(tokens["refresh_token"]) >= 43  # 256 bits, base64url

    header = jose_part(tokens["access_token"], 0)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    assert header["kid"]
    claims = await verify_with_jwks(client, tokens["access_token"])
    assert {"iss", "sub", "aud", "exp", "iat", "jti", "sid", "client_id", "scope"} <= set(claims)
    assert claims["sub"] == created.json()["id"]
    assert email not in str(claims)  # no personal data in the token
    assert claims["sid"] == tokens["session_id"]
    assert claims["exp"] - claims["iat"] == 300
    assert "mail:read" in claims["scope"].split()

    me = await client.get("/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200
    assert me.json()["email"] == email
    assert me.json()["roles"] == ["user"]


async def test_signup_refusals_are_clear_4xx(client: httpx.AsyncClient) -> None:
    email = new_email()
    await signup(client, email)
    cases = [
        ({"email": email, "password": PASSWORD}, 409, "email_taken"),
        ({"email": new_email(), "password": "short1"}, 422, "weak_password"),
        ({"email": new_email(), "password": "password1"}, 422, "weak_password"),
        ({"email": new_email(), "password": "x" * 129}, 422, "weak_password"),
        ({"email": "not-an-email", "password": PASSWORD}, 422, "invalid_email"),
        ({"email": new_email()}, 422, "validation_error"),
        ({"email": new_email(), "password": PASSWORD, "admin": True}, 422, "validation_error"),
    ]
    for body, status, code in cases:
        response = await client.post("/signup", json=body)
        assert response.status_code == status, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == code
        assert PASSWORD not in response.text
    common = await client.post("/signup", json={"email": new_email(), "password": "password1"})
    assert "common" in common.json()["detail"]

    malformed = await client.post(
        "/signup", content=b'{"email": ', headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 400
    assert malformed.json()["code"] == "malformed_request"
    huge = await client.post("/signup", json={"email": new_email(), "password": "x" * 100_000})
    assert huge.status_code == 413
    assert (await client.get("/healthz")).status_code == 200


async def test_repeated_failures_back_off_without_locking_the_owner_out(
    settings_for: Callable[..., Settings], clock: NowClock
) -> None:
    async with (
        serving(settings_for(throttle_pair_free=3), clock) as app,
        client_from(app, "127.0.0.1") as attacker,
        client_from(app, "127.0.0.2") as owner,
    ):
        email = new_email("target")
        await signup(attacker, email)
        wrong = {"email": email, "password": "Not-the-password-1"}
        statuses = [(await attacker.post("/login", json=wrong)).status_code for _ in range(3)]
        assert statuses == [401, 401, 401]
        throttled = await attacker.post("/login", json=wrong)
        assert throttled.status_code == 429
        assert int(throttled.headers["Retry-After"]) >= 1
        assert throttled.json()["code"] == "too_many_attempts"
        # Even the right password waits, from the attacker's address...
        right = await attacker.post("/login", json={"email": email, "password": PASSWORD})
        assert right.status_code == 429
        # ...but the owner, from another address, is not locked out.
        assert (await login(owner, email))["access_token"]


async def test_me_needs_a_valid_bearer_token(client: httpx.AsyncClient) -> None:
    _, _, tokens = await new_user(client)
    missing = await client.get("/me")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="gatepass"'
    for header in ("Bearer garbage", "Basic abc", f"Bearer {tokens['access_token']}x"):
        bad = await client.get("/me", headers={"Authorization": header})
        assert bad.status_code == 401
        assert 'error="invalid_token"' in bad.headers["WWW-Authenticate"]
        assert bad.headers["content-type"] == "application/problem+json"
    header, _, signature = tokens["access_token"].split(".")
    tampered = jose_part(tokens["access_token"], 1)
    tampered["sub"] = "usr_someone_else"
    forged_payload = base64.urlsafe_b64encode(json.dumps(tampered).encode()).rstrip(b"=").decode()
    forged = await client.get("/me", headers=bearer(f"{header}.{forged_payload}.{signature}"))
    assert forged.status_code == 401


def log_lines(records: list[logging.LogRecord]) -> str:
    """Every record as the service writes it, in both of its formats (text and JSON lines)."""
    formatters = (TextFormatter(), JsonFormatter())
    return "\n".join(formatter.format(record) for record in records for formatter in formatters)


async def test_login_failures_and_logs_leak_no_secret(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # the service's default level
    async with client_from(app) as client:
        email, _, tokens = await new_user(client)
        await client.post("/login", json={"email": email, "password": "Wrong-password-77"})
        await client.get("/me", headers=bearer(tokens["access_token"]))
        form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        await client.post("/token", data=form)
        form = {"grant_type": "refresh_token", "refresh_token": "made-up-token"}
        await client.post("/token", data=form)
    log = log_lines(caplog.records)
    assert "request" in log  # the access log is there...
    for secret in (
        PASSWORD,
        "Wrong-password-77",
        tokens["access_token"],
        tokens["refresh_token"],
        "made-up-token",
    ):
        assert secret not in log  # ...and no secret is in it
    assert tokens["access_token"].split(".")[2] not in log

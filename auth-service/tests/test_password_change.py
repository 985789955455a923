"""``POST /me/password``: the current password checked (and throttled) as at a login, the new one
under the signup policy; then every other session signed out and every access token issued
before the change revoked, while the calling session refreshes and goes on. In-process.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from api_users import PASSWORD, bearer, login, new_user
from feed_helpers import caught_up, events_after
from refresh_helpers import refresh
from sqlalchemy import select

from auth_service import accounts, devices
from auth_service.models import SecurityEvent
from auth_service.state import Services

NEW_PASSWORD = "a longer passphrase for 2030"


async def change(
    client: httpx.AsyncClient, access_token: str, current: str, new: str = NEW_PASSWORD
) -> httpx.Response:
    return await client.post(
        "/me/password",
        json={"current_password": current, "new_password": new},
        headers=bearer(access_token),
    )


async def test_the_caller_stays_signed_in_everyone_else_is_signed_out(
    client: httpx.AsyncClient, services: Services
) -> None:
    email, user_id, laptop = await new_user(client)
    phone = await login(client, email)

    changed = await change(client, laptop["access_token"], PASSWORD)

    assert changed.status_code == 204
    # Every access token issued before the change is revoked, the caller's own too...
    for tokens in (laptop, phone):
        assert (await client.get("/me", headers=bearer(tokens["access_token"]))).status_code == 401
    # ...the other session is gone, the caller's refreshes into a token issued after it.
    assert (await refresh(client, phone["refresh_token"])).json()["error"] == "invalid_grant"
    renewed = await refresh(client, laptop["refresh_token"])
    assert renewed.status_code == 200
    me = await client.get("/me", headers=bearer(renewed.json()["access_token"]))
    assert me.json()["session_id"] == laptop["session_id"]
    # The new password signs in, the old one no longer does.
    assert (await client.post("/login", json={"email": email, "password": PASSWORD})).is_error
    assert (await login(client, email, NEW_PASSWORD))["access_token"]
    async with services.sessions() as db:
        (audit,) = await db.scalars(
            select(SecurityEvent).where(SecurityEvent.kind == "password_changed")
        )
    assert (audit.user_id, audit.session_id) == (user_id, laptop["session_id"])
    assert audit.detail == {"sessions_signed_out": 1}


async def test_a_wrong_current_password_changes_nothing(client: httpx.AsyncClient) -> None:
    email, _, tokens = await new_user(client)
    cursor = await caught_up(client)

    wrong = await change(client, tokens["access_token"], "not my password at all")

    assert wrong.status_code == 403
    assert wrong.json()["code"] == "wrong_password"
    assert "WWW-Authenticate" not in wrong.headers
    assert (await client.get("/me", headers=bearer(tokens["access_token"]))).status_code == 200
    assert (await login(client, email))["access_token"]
    assert await events_after(client, cursor) == []


async def test_the_new_password_meets_the_signup_policy(client: httpx.AsyncClient) -> None:
    email, _, tokens = await new_user(client)

    for weak, reason in (("tiny1", "too_short"), ("password123", "common"), (email, "email")):
        refused = await change(client, tokens["access_token"], PASSWORD, weak)
        assert refused.status_code == 422
        assert refused.json()["reason"] == reason
        assert weak not in refused.text
    assert (await client.get("/me", headers=bearer(tokens["access_token"]))).status_code == 200


async def test_guessing_the_current_password_is_throttled_as_logins_are(
    client: httpx.AsyncClient, services: Services
) -> None:
    _, _, tokens = await new_user(client)
    free = services.settings.throttle_pair_free

    answers = [
        (await change(client, tokens["access_token"], f"guess number {n}")).status_code
        for n in range(free + 1)
    ]

    assert answers == [403] * free + [429]
    throttled = await change(client, tokens["access_token"], PASSWORD)
    assert throttled.status_code == 429  # even the right password, until the back-off passes
    assert int(throttled.headers["Retry-After"]) >= 1


async def test_without_a_token_there_is_no_change(client: httpx.AsyncClient) -> None:
    refused = await client.post(
        "/me/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_login_that_checked_the_old_password_during_a_change_opens_nothing(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Someone who knows the old password logs in again and again; one login has its password
    # checked just before the owner changes it, and would open its session just after.
    email, _, owner = await new_user(client)
    checked, go = asyncio.Event(), asyncio.Event()
    open_session = devices.open_session

    async def paused(*args: Any, **kwargs: Any) -> Any:  # just after the password check
        checked.set()
        await go.wait()
        return await open_session(*args, **kwargs)

    monkeypatch.setattr(devices, "open_session", paused)
    intruder = asyncio.create_task(
        client.post("/login", json={"email": email, "password": PASSWORD})
    )
    await checked.wait()
    monkeypatch.setattr(devices, "open_session", open_session)
    assert (await change(client, owner["access_token"], PASSWORD)).status_code == 204
    go.set()

    refused = await intruder
    assert refused.status_code == 401
    assert "access_token" not in refused.json()


async def test_a_rehash_during_a_change_never_puts_the_old_password_back(
    client: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hashing parameters changed: a login re-hashes the password it checked. If the owner
    # changes the password meanwhile, that stale hash must not overwrite the new one.
    email, _, owner = await new_user(client)
    monkeypatch.setattr(services.passwords, "needs_rehash", lambda _hash: True)
    checked, go = asyncio.Event(), asyncio.Event()
    rehash = accounts._rehash

    async def paused(*args: Any, **kwargs: Any) -> Any:
        checked.set()
        await go.wait()
        return await rehash(*args, **kwargs)

    monkeypatch.setattr(accounts, "_rehash", paused)
    stale = asyncio.create_task(client.post("/login", json={"email": email, "password": PASSWORD}))
    await checked.wait()
    monkeypatch.setattr(accounts, "_rehash", rehash)
    monkeypatch.setattr(services.passwords, "needs_rehash", lambda _hash: False)
    assert (await change(client, owner["access_token"], PASSWORD)).status_code == 204
    go.set()

    assert (await stale).status_code == 401
    old = await client.post("/login", json={"email": email, "password": PASSWORD})
    assert old.status_code == 401
    assert (await login(client, email, NEW_PASSWORD))["access_token"]

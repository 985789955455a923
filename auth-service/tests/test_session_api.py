"""Sessions and refresh-token rotation with theft detection, seen by a client: the grace window,
reuse after it, the device list, logout, idle and absolute expiry, and the token endpoint's
RFC 6749 errors. In-process, over ASGI; time passes only when the test moves the clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

import httpx
import pytest
from api_users import bearer, login, new_user
from asgi_clients import client_from
from auth_apps import ServiceClock, serving
from fastapi import FastAPI
from refresh_helpers import refresh

from auth_service.config import Settings


class MovableClock(ServiceClock, Protocol):
    now: datetime

    def advance(self, seconds: float) -> None: ...


async def test_refresh_rotates_and_reuse_inside_grace_keeps_the_session(
    client: httpx.AsyncClient,
) -> None:
    _, _, tokens = await new_user(client)
    first = await refresh(client, tokens["refresh_token"])
    assert first.status_code == 200
    assert first.headers["Cache-Control"] == "no-store"
    rotated = first.json()
    assert rotated["refresh_token"] != tokens["refresh_token"]
    assert rotated["session_id"] == tokens["session_id"]
    # An honest retry with the old token, inside the grace window: not a logout. It gets a
    # new pair, and the first answer's refresh token dies unused: only the newest answer lives.
    retry = await refresh(client, tokens["refresh_token"])
    assert retry.status_code == 200
    newest = retry.json()
    assert (await refresh(client, newest["refresh_token"])).status_code == 200
    assert (await client.get("/me", headers=bearer(newest["access_token"]))).status_code == 200


async def test_reuse_after_grace_revokes_the_whole_session(
    settings_for: Callable[..., Settings],
    clock: MovableClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with (
        serving(settings_for(refresh_reuse_grace=1), clock) as app,
        client_from(app) as client,
    ):
        _, _, tokens = await new_user(client)
        rotated = (await refresh(client, tokens["refresh_token"])).json()
        clock.advance(1.5)
        stolen = await refresh(client, tokens["refresh_token"])
        assert stolen.status_code == 400
        assert stolen.json()["error"] == "invalid_grant"
        assert set(stolen.json()) == {"error", "error_description"}
        # The thief's copy and the legitimate successor are both dead now.
        after = await refresh(client, rotated["refresh_token"])
        assert after.status_code == 400
        assert after.json()["error"] == "invalid_grant"
        me = await client.get("/me", headers=bearer(rotated["access_token"]))
        assert me.status_code == 401
        metrics = (await client.get("/metrics")).text
        assert "gatepass_auth_refresh_reuse_detected_total 1.0" in metrics
    assert "refresh token reused after rotation" in caplog.text


async def test_devices_list_sign_out_and_logout_everywhere(app: FastAPI) -> None:
    async with client_from(app) as laptop, client_from(app) as phone:
        laptop.headers["User-Agent"] = "laptop"
        phone.headers["User-Agent"] = "phone"
        email, _, on_laptop = await new_user(laptop)
        on_phone = await login(phone, email)
        as_laptop = bearer(on_laptop["access_token"])
        listed = (await laptop.get("/sessions", headers=as_laptop)).json()
        assert {s["user_agent"] for s in listed} == {"laptop", "phone"}
        assert [s["current"] for s in listed if s["id"] == on_laptop["session_id"]] == [True]
        assert [s["current"] for s in listed if s["id"] == on_phone["session_id"]] == [False]

        # Signing the phone out from the laptop: its refresh token fails at once.
        gone = await laptop.delete(f"/sessions/{on_phone['session_id']}", headers=as_laptop)
        assert gone.status_code == 204
        dead = await refresh(phone, on_phone["refresh_token"])
        assert dead.json()["error"] == "invalid_grant"
        remaining = (await laptop.get("/sessions", headers=as_laptop)).json()
        assert [s["id"] for s in remaining] == [on_laptop["session_id"]]

        # Another user's session is "not found", never "forbidden".
        _, _, other = await new_user(phone, "other")
        foreign = await phone.delete(
            f"/sessions/{on_laptop['session_id']}", headers=bearer(other["access_token"])
        )
        assert foreign.status_code == 404

        # Logout ends this session only.
        assert (await laptop.post("/logout", headers=as_laptop)).status_code == 204
        assert (await refresh(laptop, on_laptop["refresh_token"])).status_code == 400
        assert (await laptop.get("/me", headers=as_laptop)).status_code == 401

        # Logout everywhere ends all of them.
        a = await login(laptop, email)
        b = await login(phone, email)
        everywhere = await laptop.post("/logout/all", headers=bearer(a["access_token"]))
        assert everywhere.status_code == 204
        assert (await refresh(laptop, a["refresh_token"])).status_code == 400
        assert (await refresh(phone, b["refresh_token"])).status_code == 400
        assert (await phone.get("/me", headers=bearer(b["access_token"]))).status_code == 401


async def test_sessions_expire_when_idle_and_at_their_absolute_lifetime(
    settings_for: Callable[..., Settings], clock: MovableClock
) -> None:
    settings = settings_for(session_idle_timeout=2, session_absolute_lifetime=4)
    async with serving(settings, clock) as app, client_from(app) as client:
        email, _, idle = await new_user(client)
        clock.advance(2.5)
        expired = await refresh(client, idle["refresh_token"])
        assert expired.json() == {
            "error": "invalid_grant",
            "error_description": "The session has been idle for too long.",
        }
        token = (await login(client, email))["refresh_token"]
        statuses = []
        for _ in range(4):  # used every 1.2 s: never idle, but past 4 s it has lived too long
            clock.advance(1.2)
            response = await refresh(client, token)
            statuses.append(response.status_code)
            if response.status_code != 200:
                break
            token = response.json()["refresh_token"]
        assert statuses == [200, 200, 200, 400]
        assert (
            response.json()["error_description"] == "The session has reached its maximum lifetime."
        )


async def test_token_endpoint_errors_follow_rfc_6749(client: httpx.AsyncClient) -> None:
    cases = [
        ({"grant_type": "password", "username": "a", "password": "b"}, "unsupported_grant_type"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
        ({}, "invalid_request"),
        ({"grant_type": "refresh_token", "refresh_token": "nope"}, "invalid_grant"),
    ]
    for form, error in cases:
        response = await client.post("/token", data=form)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == error
        assert response.headers["Cache-Control"] == "no-store"
    as_json = await client.post(
        "/token", json={"grant_type": "refresh_token", "refresh_token": "x"}
    )
    assert as_json.json()["error"] == "invalid_request"
    repeated = await client.post(
        "/token",
        content=b"grant_type=refresh_token&grant_type=refresh_token&refresh_token=x",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert repeated.json()["error"] == "invalid_request"
    bad_bytes = await client.post(
        "/token",
        content=b"grant_type=\xff\xfe",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert bad_bytes.status_code == 400

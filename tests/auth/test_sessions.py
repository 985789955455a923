"""Sessions and refresh-token rotation with theft detection, over real HTTP."""

from __future__ import annotations

import time

import httpx

from tests.support.auth_client import bearer, login, new_user, refresh
from tests.support.procs import ServiceFactory


def test_refresh_rotates_and_reuse_inside_grace_keeps_the_session(
    start_auth: ServiceFactory,
) -> None:
    auth = start_auth()
    with httpx.Client(base_url=auth.base_url) as client:
        _, _, tokens = new_user(client)
        first = refresh(client, tokens["refresh_token"])
        assert first.status_code == 200
        assert first.headers["Cache-Control"] == "no-store"
        rotated = first.json()
        assert rotated["refresh_token"] != tokens["refresh_token"]
        assert rotated["session_id"] == tokens["session_id"]
        # An honest retry with the old token, inside the grace window: not a logout. It gets a
        # new pair, and the first answer's refresh token dies unused: only the newest answer lives.
        retry = refresh(client, tokens["refresh_token"])
        assert retry.status_code == 200
        newest = retry.json()
        assert refresh(client, newest["refresh_token"]).status_code == 200
        assert client.get("/me", headers=bearer(newest["access_token"])).status_code == 200


def test_reuse_after_grace_revokes_the_whole_session(start_auth: ServiceFactory) -> None:
    auth = start_auth({"GATEPASS_AUTH_REFRESH_REUSE_GRACE": "1"})
    with httpx.Client(base_url=auth.base_url) as client:
        _, _, tokens = new_user(client)
        rotated = refresh(client, tokens["refresh_token"]).json()
        time.sleep(1.5)
        stolen = refresh(client, tokens["refresh_token"])
        assert stolen.status_code == 400
        assert stolen.json()["error"] == "invalid_grant"
        assert set(stolen.json()) == {"error", "error_description"}
        # The thief's copy and the legitimate successor are both dead now.
        after = refresh(client, rotated["refresh_token"])
        assert after.status_code == 400
        assert after.json()["error"] == "invalid_grant"
        assert client.get("/me", headers=bearer(rotated["access_token"])).status_code == 401
        metrics = client.get("/metrics").text
        assert "gatepass_auth_refresh_reuse_detected_total 1.0" in metrics
    assert "refresh token reused after rotation" in auth.log_text()


def test_devices_list_sign_out_and_logout_everywhere(start_auth: ServiceFactory) -> None:
    auth = start_auth()
    with (
        httpx.Client(base_url=auth.base_url, headers={"User-Agent": "laptop"}) as laptop,
        httpx.Client(base_url=auth.base_url, headers={"User-Agent": "phone"}) as phone,
    ):
        email, _, on_laptop = new_user(laptop)
        on_phone = login(phone, email)
        listed = laptop.get("/sessions", headers=bearer(on_laptop["access_token"])).json()
        assert {s["user_agent"] for s in listed} == {"laptop", "phone"}
        assert [s["current"] for s in listed if s["id"] == on_laptop["session_id"]] == [True]
        assert [s["current"] for s in listed if s["id"] == on_phone["session_id"]] == [False]

        # Signing the phone out from the laptop: its refresh token fails at once.
        gone = laptop.delete(
            f"/sessions/{on_phone['session_id']}", headers=bearer(on_laptop["access_token"])
        )
        assert gone.status_code == 204
        assert refresh(phone, on_phone["refresh_token"]).json()["error"] == "invalid_grant"
        remaining = laptop.get("/sessions", headers=bearer(on_laptop["access_token"])).json()
        assert [s["id"] for s in remaining] == [on_laptop["session_id"]]

        # Another user's session is "not found", never "forbidden".
        _, _, other = new_user(phone, "other")
        foreign = phone.delete(
            f"/sessions/{on_laptop['session_id']}", headers=bearer(other["access_token"])
        )
        assert foreign.status_code == 404

        # Logout ends this session only.
        assert laptop.post("/logout", headers=bearer(on_laptop["access_token"])).status_code == 204
        assert refresh(laptop, on_laptop["refresh_token"]).status_code == 400
        assert laptop.get("/me", headers=bearer(on_laptop["access_token"])).status_code == 401

        # Logout everywhere ends all of them.
        a = login(laptop, email)
        b = login(phone, email)
        assert laptop.post("/logout/all", headers=bearer(a["access_token"])).status_code == 204
        assert refresh(laptop, a["refresh_token"]).status_code == 400
        assert refresh(phone, b["refresh_token"]).status_code == 400
        assert phone.get("/me", headers=bearer(b["access_token"])).status_code == 401


def test_sessions_expire_when_idle_and_at_their_absolute_lifetime(
    start_auth: ServiceFactory,
) -> None:
    auth = start_auth(
        {"GATEPASS_AUTH_SESSION_IDLE_TIMEOUT": "2", "GATEPASS_AUTH_SESSION_ABSOLUTE_LIFETIME": "4"}
    )
    with httpx.Client(base_url=auth.base_url) as client:
        email, _, idle = new_user(client)
        time.sleep(2.5)
        expired = refresh(client, idle["refresh_token"])
        assert expired.json() == {
            "error": "invalid_grant",
            "error_description": "The session has been idle for too long.",
        }
        active = login(client, email)
        token = active["refresh_token"]
        for _ in range(4):  # used every 1.2 s: never idle, but past 4 s it has lived too long
            time.sleep(1.2)
            response = refresh(client, token)
            if response.status_code != 200:
                break
            token = response.json()["refresh_token"]
        assert (
            response.json()["error_description"] == "The session has reached its maximum lifetime."
        )


def test_token_endpoint_errors_follow_rfc_6749(start_auth: ServiceFactory) -> None:
    auth = start_auth()
    with httpx.Client(base_url=auth.base_url) as client:
        cases = [
            (
                {"grant_type": "password", "username": "a", "password": "b"},
                "unsupported_grant_type",
            ),
            ({"grant_type": "refresh_token"}, "invalid_request"),
            ({}, "invalid_request"),
            ({"grant_type": "refresh_token", "refresh_token": "nope"}, "invalid_grant"),
        ]
        for form, error in cases:
            response = client.post("/token", data=form)
            assert response.status_code == 400, response.text
            assert response.json()["error"] == error
            assert response.headers["Cache-Control"] == "no-store"
        as_json = client.post("/token", json={"grant_type": "refresh_token", "refresh_token": "x"})
        assert as_json.json()["error"] == "invalid_request"
        repeated = client.post(
            "/token",
            content=b"grant_type=refresh_token&grant_type=refresh_token&refresh_token=x",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert repeated.json()["error"] == "invalid_request"
        bad_bytes = client.post(
            "/token",
            content=b"grant_type=\xff\xfe",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert bad_bytes.status_code == 400

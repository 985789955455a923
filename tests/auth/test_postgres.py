"""The same service on PostgreSQL: storage, restart, and several replicas on one database."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.support.auth_client import bearer, jose_part, login, new_user, refresh
from tests.support.cli import run_cli
from tests.support.procs import ServiceFactory

pytestmark = pytest.mark.postgres


def test_postgres_signup_login_refresh_restart(
    start_auth: ServiceFactory, postgres_url: str
) -> None:
    auth = start_auth({"GATEPASS_AUTH_DATABASE_URL": postgres_url})
    with httpx.Client(base_url=auth.base_url) as client:
        email, user_id, tokens = new_user(client)
        rotated = refresh(client, tokens["refresh_token"]).json()
        assert rotated["session_id"] == tokens["session_id"]
    auth.stop()
    auth.restart()
    with httpx.Client(base_url=auth.base_url) as client:
        assert client.get("/me", headers=bearer(rotated["access_token"])).json()["id"] == user_id
        assert refresh(client, rotated["refresh_token"]).status_code == 200
        assert (
            client.post(
                "/signup", json={"email": email, "password": "another strong one 7"}
            ).status_code
            == 409
        )


async def test_postgres_concurrent_signup(start_auth: ServiceFactory, postgres_url: str) -> None:
    auth = start_auth(
        {
            "GATEPASS_AUTH_DATABASE_URL": postgres_url,
            # Room for all fifty at once: the race on the email is what this is about.
            "GATEPASS_AUTH_THROTTLE_SIGNUP_FREE": "100",
            "GATEPASS_AUTH_PASSWORD_QUEUE_SIZE": "100",
        }
    )
    async with httpx.AsyncClient(base_url=auth.base_url, timeout=60) as client:
        body = {"email": "race@example.com", "password": "correct horse battery staple 42"}
        responses = await asyncio.gather(*(client.post("/signup", json=body) for _ in range(50)))
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 1
    assert statuses.count(409) == 49


def test_replicas_share_keys_and_exactly_one_rotates(
    start_auth: ServiceFactory, postgres_url: str, auth_env: dict[str, str]
) -> None:
    env = {
        "GATEPASS_AUTH_DATABASE_URL": postgres_url,
        "GATEPASS_AUTH_JWKS_MAX_AGE": "1",
        "GATEPASS_AUTH_KEY_PUBLISH_MARGIN": "0",
        "GATEPASS_AUTH_KEY_CHECK_INTERVAL": "0.2",
        "GATEPASS_AUTH_KEY_ROTATION_INTERVAL": "60",
    }
    first = start_auth(env)
    second = start_auth(env)
    with (
        httpx.Client(base_url=first.base_url) as one,
        httpx.Client(base_url=second.base_url) as two,
    ):
        assert one.get("/.well-known/jwks.json").json() == two.get("/.well-known/jwks.json").json()
        email, _, tokens = new_user(one)
        # A token from one replica works at the other; a refresh token too.
        assert two.get("/me", headers=bearer(tokens["access_token"])).status_code == 200
        rotated = refresh(two, tokens["refresh_token"]).json()
        assert (
            jose_part(rotated["access_token"], 0)["kid"]
            == jose_part(tokens["access_token"], 0)["kid"]
        )
        assert login(two, email)["session_id"]

        # A forced rotation: both replicas' maintenance loops race to promote; exactly one does.
        run_cli(auth_env | env, "keys", "rotate")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _rotations(one) + _rotations(two) == 0:
            time.sleep(0.3)
        time.sleep(1.0)  # let the slower replica run its loop a few more times
        assert _rotations(one) + _rotations(two) == 1
        assert one.get("/.well-known/jwks.json").json() == two.get("/.well-known/jwks.json").json()
        new_kid = jose_part(login(one, email)["access_token"], 0)["kid"]
        assert jose_part(login(two, email)["access_token"], 0)["kid"] == new_kid
        assert new_kid != jose_part(tokens["access_token"], 0)["kid"]


def _rotations(client: httpx.Client) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("gatepass_auth_key_rotations_total "):
            return float(line.split()[1])
    raise AssertionError("no rotation counter in /metrics")

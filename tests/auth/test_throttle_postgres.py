"""The throttle under real concurrency on PostgreSQL (and the same on SQLite): the app in-process
over ASGI, its requests racing on a pool of real connections for the same counter rows.

Forty concurrent wrong passwords for one account from one address: at most the allowance reach
argon2, the rest are refused with 429. Forty concurrent wrong client secrets: at most the
allowance are compared. The clock stands still, so no back-off runs out during the burst.
"""

from __future__ import annotations

import asyncio
import base64
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from auth_service.app import create_app, running
from auth_service.state import Services
from tests.support.inprocess import BASE_URL, auth_settings

EMAIL = "owner@example.com"
PASSWORD = "correct horse battery staple 42"
BURST = 40
T0 = datetime(2030, 1, 1, tzinfo=UTC)


class StillClock:
    """The service's clock: it moves only when the test sets ``now``."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Auth:
    app: FastAPI
    svc: Services
    clock: StillClock

    def client(self, ip: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(ip, 40000))
        return httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=60)

    def hashes(self) -> float:
        name = "gatepass_auth_password_hash_seconds_count"
        value = self.svc.metrics.registry.get_sample_value(name)
        assert value is not None
        return value


@pytest.fixture
async def auth(tmp_path: Path, database_url: str | None) -> AsyncIterator[Auth]:
    settings = auth_settings(
        tmp_path,
        database_url,
        password_queue_size=200,  # room for the whole burst: this is about the throttle
        introspection_clients={"mail": SecretStr("mail-secret-for-tests")},
    )

    clock = StillClock()
    app = create_app(settings, clock=clock)
    async with running(settings, clock, background=False) as svc:
        app.state.services = svc
        yield Auth(app, svc, clock)


async def test_concurrent_wrong_passwords_reach_argon2_at_most_the_allowance(auth: Auth) -> None:
    async with auth.client("192.0.2.10") as owner:
        signed_up = await owner.post("/signup", json={"email": EMAIL, "password": PASSWORD})
        assert signed_up.status_code == 201, signed_up.text
    allowance = auth.svc.settings.throttle_pair_free
    before = auth.hashes()
    wrong = {"email": EMAIL, "password": "not the password 7"}
    async with auth.client("198.51.100.66") as attacker:
        answers = await asyncio.gather(*(attacker.post("/login", json=wrong) for _ in range(BURST)))
    assert auth.hashes() - before == allowance
    assert Counter(r.status_code for r in answers) == {401: allowance, 429: BURST - allowance}
    async with auth.client("192.0.2.10") as owner:
        right = await owner.post("/login", json={"email": EMAIL, "password": PASSWORD})
    assert right.status_code == 200, right.text


async def test_concurrent_client_secret_guesses_stop_at_the_allowance(auth: Auth) -> None:
    allowance = auth.svc.settings.throttle_client_ip_free

    def basic(secret: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"mail:{secret}".encode()).decode()}

    async with auth.client("198.51.100.66") as attacker:
        answers = await asyncio.gather(
            *(
                attacker.post("/introspect", data={"token": "x"}, headers=basic(f"guess-{i}"))
                for i in range(BURST)
            )
        )
    assert Counter(r.status_code for r in answers) == {401: allowance, 429: BURST - allowance}
    async with auth.client("192.0.2.20") as mail:
        own = await mail.post(
            "/introspect", data={"token": "x"}, headers=basic("mail-secret-for-tests")
        )
    assert own.status_code == 200, own.text
    assert own.json() == {"active": False}


async def test_housekeeping_forgets_old_counters_only(auth: Auth) -> None:
    wrong = {"email": EMAIL, "password": "not the password 7"}
    async with auth.client("198.51.100.66") as attacker:
        assert (await attacker.post("/login", json=wrong)).status_code == 401
    assert await auth.svc.throttle.forget_old() == 0  # still inside the window
    auth.clock.now = T0 + timedelta(seconds=auth.svc.settings.throttle_window + 1)
    assert await auth.svc.throttle.forget_old() == 3  # the pair, the address, the account

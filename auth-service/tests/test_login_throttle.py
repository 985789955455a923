"""Login throttling: attempts are counted before the hash, so concurrent guesses cannot outrun the
allowance; and an attacker elsewhere cannot keep the owner out.

In-process: the real app over ASGI, a real SQLite file, the clock moved by the test (it stands
still unless a test moves it, so every back-off lasts as long as the test wants).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta
from typing import Protocol

import httpx
import pytest
from fastapi import FastAPI

from auth_service.config import Settings
from auth_service.state import Services

EMAIL = "owner@example.com"
PASSWORD = "correct horse battery staple 42"
WRONG = {"email": EMAIL, "password": "not the password 7"}
RIGHT = {"email": EMAIL, "password": PASSWORD}
OWNER_IP = "192.0.2.10"
ATTACKER_IP = "198.51.100.66"


class MovableClock(Protocol):
    """The ``clock`` fixture (conftest's FakeClock)."""

    now: datetime

    def advance(self, seconds: float) -> None: ...


@pytest.fixture
def auth_settings(auth_settings: Settings) -> Settings:
    # Room in the hashing queue for every concurrent request: this file is about the throttle.
    return auth_settings.model_copy(update={"password_queue_size": 200})


def client_from(app: FastAPI, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://auth.test")


def hashes(services: Services) -> float:
    """Password hashes and verifies run so far (the histogram observes each one)."""
    value = services.metrics.registry.get_sample_value("gatepass_auth_password_hash_seconds_count")
    assert value is not None
    return value


async def sign_up(app: FastAPI, ip: str = OWNER_IP) -> None:
    async with client_from(app, ip) as http:
        response = await http.post("/signup", json=RIGHT)
    assert response.status_code == 201, response.text


async def test_concurrent_wrong_passwords_reach_argon2_at_most_the_allowance(
    app: FastAPI, services: Services
) -> None:
    await sign_up(app)
    allowance = services.settings.throttle_pair_free
    before = hashes(services)
    async with client_from(app, ATTACKER_IP) as attacker:
        responses = await asyncio.gather(*(attacker.post("/login", json=WRONG) for _ in range(40)))
    assert hashes(services) - before == allowance
    assert Counter(r.status_code for r in responses) == {401: allowance, 429: 40 - allowance}
    for refused in (r for r in responses if r.status_code == 429):
        assert refused.json()["code"] == "too_many_attempts"
        assert int(refused.headers["Retry-After"]) >= 1


async def test_a_right_password_settles_its_reservation(
    app: FastAPI, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A success gives its address the attempt back: an office behind one address logging in all
    day never reaches the address allowance, and the account's counters are cleared."""
    monkeypatch.setattr(services.settings, "throttle_ip_free", 10)
    await sign_up(app)
    async with client_from(app, OWNER_IP) as owner:
        for _ in range(2 * services.settings.throttle_ip_free):
            assert (await owner.post("/login", json=RIGHT)).status_code == 200
        for _ in range(services.settings.throttle_pair_free - 1):
            assert (await owner.post("/login", json=WRONG)).status_code == 401
        assert (await owner.post("/login", json=RIGHT)).status_code == 200
        # The pair's failures were cleared by the success: its full allowance again.
        statuses = [(await owner.post("/login", json=WRONG)).status_code for _ in range(5)]
    assert statuses == [401] * 5


async def _spray(app: FastAPI, count: int) -> None:
    """One failure each from ``count`` addresses: no pair or address rule fires, but the account
    counter climbs (a distributed attack, or one address rotating a trusted X-Forwarded-For)."""
    for i in range(count):
        async with client_from(app, f"203.0.113.{i % 250}") as sprayer:
            assert (await sprayer.post("/login", json=WRONG)).status_code == 401


async def test_an_attacker_elsewhere_cannot_keep_the_owner_out(
    app: FastAPI, services: Services, clock: MovableClock
) -> None:
    """The red team's pattern. With the default settings only one rule is shared by an attacker
    elsewhere and the owner: the account-wide one (100 free failures, then 1, 2, 4 ... s, capped
    at 60 s). Once its allowance is used up, each counted failure re-arms it, it was checked before
    the password, and a 429 never reached the success that clears it: eight failures timed at the
    block expiries, over four minutes, kept the owner at 429 every time.
    """
    await sign_up(app)
    await _spray(app, services.settings.throttle_account_free - 1)
    start = clock.now
    owner_statuses: list[int] = []
    async with client_from(app, OWNER_IP) as owner, client_from(app, ATTACKER_IP) as attacker:
        for _ in range(40):  # bounded: eight failures, with waits for the attacker's own blocks
            if len(owner_statuses) == 8:
                break
            guess = await attacker.post("/login", json=WRONG)
            if guess.status_code == 429:
                clock.advance(int(guess.headers["Retry-After"]))
                continue
            assert guess.status_code == 401
            clock.advance(0.5)
            owner_statuses.append((await owner.post("/login", json=RIGHT)).status_code)
            clock.advance(30)
    assert owner_statuses == [200] * 8
    assert clock.now - start <= timedelta(minutes=5)


async def test_the_waiver_gives_each_failing_address_one_attempt_only(
    app: FastAPI, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The account-wide rule still binds every address that has failed: a distributed attacker
    gets one guess per address and window through a blocked account, not more."""
    monkeypatch.setattr(services.settings, "throttle_account_free", 3)
    await sign_up(app)
    await _spray(app, 3)  # the third failure blocks the account
    async with client_from(app, ATTACKER_IP) as attacker:
        first = await attacker.post("/login", json=WRONG)  # a clean address: let through
        again = await attacker.post("/login", json=WRONG)  # no longer clean: the account rule
        right = await attacker.post("/login", json=RIGHT)  # even the right password waits here
    assert [first.status_code, again.status_code, right.status_code] == [401, 429, 429]
    async with client_from(app, "203.0.113.1") as sprayer:  # failed before: the account rule
        assert (await sprayer.post("/login", json=RIGHT)).status_code == 429
    async with client_from(app, OWNER_IP) as owner:
        assert (await owner.post("/login", json=RIGHT)).status_code == 200

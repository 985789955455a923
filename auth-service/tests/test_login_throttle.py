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

import pytest
from asgi_clients import client_from
from fastapi import FastAPI

from auth_service.config import Settings
from auth_service.state import Services
from auth_service.throttle import Throttled, address_key

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


# -- what an address is ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "key"),
    [
        ("192.0.2.10", "192.0.2.10"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:192.0.2.10", "192.0.2.10"),
        ("fe80::1%eth0", "fe80::/64"),
        ("unknown", "unknown"),
    ],
)
def test_an_ipv6_address_counts_as_its_64_and_ipv4_as_itself(ip: str, key: str) -> None:
    assert address_key(ip) == key


async def test_a_64_rotating_addresses_gets_one_clean_attempt_not_one_per_address(
    app: FastAPI, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The red team's bypass: each address of one /64 was clean, so each got its waived attempt
    through a blocked account (and its own pair and address allowances)."""
    monkeypatch.setattr(services.settings, "throttle_account_free", 3)
    await sign_up(app)
    await _spray(app, 3)  # the account is blocked
    statuses = []
    for host in range(1, 6):
        async with client_from(app, f"2001:db8:66:1::{host}") as attacker:
            statuses.append((await attacker.post("/login", json=WRONG)).status_code)
    assert statuses == [401, 429, 429, 429, 429]
    async with client_from(app, "2001:db8:10:1::1") as owner:  # another /64: clean
        assert (await owner.post("/login", json=RIGHT)).status_code == 200


async def test_signups_count_per_64_and_a_mapped_address_as_its_ipv4(
    app: FastAPI, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services.settings, "throttle_signup_free", 2)

    async def signup_from(ip: str, n: int) -> int:
        async with client_from(app, ip) as http:
            body = {"email": f"user{n}@example.com", "password": PASSWORD}
            return (await http.post("/signup", json=body)).status_code

    # Two free, then the back-off (the clock stands still): the third, from a new host, waits.
    assert [await signup_from(f"2001:db8:77:1::{n}", n) for n in range(3)] == [201, 201, 429]
    assert await signup_from("2001:db8:77:2::1", 3) == 201  # another /64
    assert [await signup_from("192.0.2.77", 4), await signup_from("192.0.2.77", 5)] == [201, 201]
    assert await signup_from("::ffff:192.0.2.77", 6) == 429


async def test_client_authentication_failures_count_per_64(services: Services) -> None:
    free = services.settings.throttle_client_ip_free
    for host in range(free):
        ip = f"2001:db8:88:1::{host}"
        assert await services.throttle.check_client(None, ip, lambda: False) is False
    with pytest.raises(Throttled):
        await services.throttle.check_client(None, "2001:db8:88:1::ffff", lambda: True)
    assert await services.throttle.check_client(None, "2001:db8:88:2::1", lambda: True)

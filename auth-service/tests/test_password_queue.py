"""The password-hashing queue is bounded: beyond it, requests are shed at once with 503 and
``Retry-After`` instead of waiting behind everyone else (a flood of bogus logins once made a
legitimate login take 47 s).

In-process, with a hasher the test holds shut: nothing depends on how fast this machine hashes.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable

import pytest
from asgi_clients import client_from
from fastapi import FastAPI

from auth_service.config import Settings
from auth_service.state import Services

HASHING = 2
QUEUE = 3
FLOOD = 40
PASSWORD = "correct horse battery staple 42"


@pytest.fixture
def auth_settings(auth_settings: Settings) -> Settings:
    return auth_settings.model_copy(
        update={"max_concurrent_hashes": HASHING, "password_queue_size": QUEUE}
    )


class HeldHasher:
    """Wraps the service's verify: each call waits until the test opens the gate."""

    def __init__(self, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
        self.gate = threading.Event()
        self.inside = 0
        self.peak = 0
        self._lock = threading.Lock()
        self._verify = services.passwords._verify_sync
        monkeypatch.setattr(services.passwords, "_verify_sync", self)

    def __call__(self, password_hash: str, password: bytes) -> bool:
        with self._lock:
            self.inside += 1
            self.peak = max(self.peak, self.inside)
        try:
            self.gate.wait(timeout=60)
            return self._verify(password_hash, password)
        finally:
            with self._lock:
                self.inside -= 1


def depth(services: Services) -> float | None:
    return services.metrics.registry.get_sample_value("gatepass_auth_password_queue_depth")


async def until(condition: Callable[[], bool]) -> None:
    """Wait until ``condition`` holds, or 10 s (what it waits for takes milliseconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not condition() and loop.time() < deadline:
        await asyncio.sleep(0.01)


async def test_a_full_hashing_queue_sheds_load_with_503(
    app: FastAPI, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    hasher = HeldHasher(services, monkeypatch)
    capacity = HASHING + QUEUE
    clients = [client_from(app, f"198.51.100.{i}") for i in range(FLOOD)]
    try:
        tasks = [
            asyncio.create_task(
                http.post("/login", json={"email": f"bot{i}@example.com", "password": "guess 1"})
            )
            for i, http in enumerate(clients)
        ]
        await until(lambda: sum(task.done() for task in tasks) == FLOOD - capacity)
        await until(lambda: hasher.inside == HASHING)  # the admitted ones reach the hasher
        shed = [task.result() for task in tasks if task.done()]
        # While the admitted ones hash, the queue holds exactly its bound and no more.
        assert depth(services) == capacity
        assert hasher.inside == HASHING
        hasher.gate.set()
        answered = await asyncio.gather(*tasks)
    finally:
        hasher.gate.set()
        for http in clients:
            await http.aclose()
    assert len(shed) == FLOOD - capacity
    assert Counter(r.status_code for r in answered) == {503: FLOOD - capacity, 401: capacity}
    for response in shed:
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "overloaded"
        assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert hasher.peak == HASHING
    rejections = services.metrics.registry.get_sample_value(
        "gatepass_auth_password_queue_rejections_total"
    )
    assert rejections == FLOOD - capacity


async def test_signup_is_shed_too_and_the_queue_recovers(
    app: FastAPI, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    hasher = HeldHasher(services, monkeypatch)
    clients = [client_from(app, f"198.51.100.{i}") for i in range(HASHING + QUEUE)]
    try:
        held = [
            asyncio.create_task(
                http.post("/login", json={"email": "x@example.com", "password": "y"})
            )
            for http in clients
        ]
        async with client_from(app, "192.0.2.1") as late:
            await until(lambda: depth(services) == HASHING + QUEUE)  # every place taken
            body = {"email": "late@example.com", "password": PASSWORD}
            refused = await late.post("/signup", json=body)
            hasher.gate.set()
            await asyncio.gather(*held)
            accepted = await late.post("/signup", json=body)
    finally:
        hasher.gate.set()
        for http in clients:
            await http.aclose()
    assert refused.status_code == 503
    assert refused.json()["code"] == "overloaded"
    assert accepted.status_code == 201


BLOCKED_IP = "203.0.113.66"
HONEST_IP = "192.0.2.20"


class HeldThrottle:
    """Wraps one throttle method: calls for ``ip`` wait until the test opens the gate, as they
    would behind a long queue on the counters' lock."""

    def __init__(
        self, services: Services, monkeypatch: pytest.MonkeyPatch, method: str, ip: str
    ) -> None:
        self.gate = asyncio.Event()
        self.waiting = 0
        self._ip = ip
        self._method = getattr(services.throttle, method)
        monkeypatch.setattr(services.throttle, method, self)

    async def __call__(self, *args: str) -> object:
        if args[-1] == self._ip:
            self.waiting += 1
            await self.gate.wait()
        return await self._method(*args)


async def test_a_blocked_address_flooding_logins_holds_no_place_in_the_queue(
    app: FastAPI, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The red team's DoS: 80 logins from a throttled address took the queue's places while they
    waited on the throttle, and an honest user elsewhere got 503. The throttle decides first."""
    async with client_from(app, HONEST_IP) as honest:
        body = {"email": "owner@example.com", "password": PASSWORD}
        assert (await honest.post("/signup", json=body)).status_code == 201
    wrong = {"email": "owner@example.com", "password": "guess 1"}
    async with client_from(app, BLOCKED_IP) as attacker:
        for _ in range(services.settings.throttle_pair_free):
            assert (await attacker.post("/login", json=wrong)).status_code == 401
        assert (await attacker.post("/login", json=wrong)).status_code == 429  # blocked now
        hasher = HeldHasher(services, monkeypatch)
        throttle = HeldThrottle(services, monkeypatch, "reserve_login", BLOCKED_IP)
        try:
            flood = [asyncio.create_task(attacker.post("/login", json=wrong)) for _ in range(FLOOD)]
            await until(lambda: throttle.waiting == FLOOD)
            assert depth(services) == 0  # waiting on the throttle holds no place
            async with client_from(app, HONEST_IP) as honest:
                login = asyncio.create_task(honest.post("/login", json=body))
                await until(lambda: hasher.inside == 1 or login.done())
                assert not login.done()  # admitted and hashing, not shed
                assert depth(services) == 1
                throttle.gate.set()
                refused = await asyncio.gather(*flood)
                hasher.gate.set()
                answer = await login
        finally:
            throttle.gate.set()
            hasher.gate.set()
    assert answer.status_code == 200
    assert Counter(r.status_code for r in refused) == {429: FLOOD}
    assert services.metrics.registry.get_sample_value(
        "gatepass_auth_password_queue_rejections_total"
    ) in (None, 0.0)


async def test_a_blocked_address_flooding_signups_holds_no_place_in_the_queue(
    app: FastAPI, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services.settings, "throttle_signup_free", 1)
    async with client_from(app, BLOCKED_IP) as attacker:
        first = {"email": "bot0@example.com", "password": PASSWORD}
        assert (await attacker.post("/signup", json=first)).status_code == 201
        throttle = HeldThrottle(services, monkeypatch, "reserve_signup", BLOCKED_IP)
        try:
            flood = [
                asyncio.create_task(
                    attacker.post(
                        "/signup", json={"email": f"bot{i}@example.com", "password": PASSWORD}
                    )
                )
                for i in range(1, FLOOD + 1)
            ]
            await until(lambda: throttle.waiting == FLOOD)
            assert depth(services) == 0
            async with client_from(app, HONEST_IP) as honest:
                body = {"email": "owner@example.com", "password": PASSWORD}
                answer = await honest.post("/signup", json=body)
            throttle.gate.set()
            refused = await asyncio.gather(*flood)
        finally:
            throttle.gate.set()
    assert answer.status_code == 201
    assert Counter(r.status_code for r in refused) == {429: FLOOD}


class FullQueue:
    """Every place in the queue taken by a login held at the hasher, until :meth:`drain`."""

    def __init__(self, app: FastAPI, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
        self._hasher = HeldHasher(services, monkeypatch)
        self._services = services
        self._clients = [client_from(app, f"198.51.100.{i}") for i in range(HASHING + QUEUE)]
        body = {"email": "x@example.com", "password": "y"}
        self._held = [asyncio.create_task(http.post("/login", json=body)) for http in self._clients]

    async def fill(self) -> None:
        await until(lambda: depth(self._services) == HASHING + QUEUE)
        assert depth(self._services) == HASHING + QUEUE

    async def drain(self) -> None:
        self._hasher.gate.set()
        await asyncio.gather(*self._held)
        for http in self._clients:
            await http.aclose()
        assert depth(self._services) == 0


async def test_a_login_shed_with_503_counts_as_no_failed_password(
    app: FastAPI, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The throttle counts a login before it takes a queue place: a full queue gives it back."""
    async with client_from(app, HONEST_IP) as owner:
        body = {"email": "owner@example.com", "password": PASSWORD}
        assert (await owner.post("/signup", json=body)).status_code == 201
        full = FullQueue(app, services, monkeypatch)
        try:
            await full.fill()
            wrong = {"email": "owner@example.com", "password": "guess 1"}
            shed = [await owner.post("/login", json=wrong) for _ in range(20)]
        finally:
            await full.drain()
        # The pair's allowance is intact: one failure short of the block, the owner still gets in
        # (had any of the 20 refusals been counted, this would be 429).
        free = services.settings.throttle_pair_free
        statuses = [(await owner.post("/login", json=wrong)).status_code for _ in range(free - 1)]
        right = await owner.post("/login", json=body)
    assert {r.status_code for r in shed} == {503}
    assert statuses == [401] * (free - 1)
    assert right.status_code == 200


async def test_a_signup_shed_with_503_uses_none_of_the_allowance(
    app: FastAPI, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services.settings, "throttle_signup_free", 2)
    async with client_from(app, HONEST_IP) as visitor:
        full = FullQueue(app, services, monkeypatch)
        try:
            await full.fill()
            shed = [
                await visitor.post(
                    "/signup", json={"email": f"u{i}@example.com", "password": PASSWORD}
                )
                for i in range(10)
            ]
        finally:
            await full.drain()
        created = [
            await visitor.post("/signup", json={"email": f"v{i}@example.com", "password": PASSWORD})
            for i in range(2)
        ]
    assert {r.status_code for r in shed} == {503}
    assert [r.status_code for r in created] == [201, 201]

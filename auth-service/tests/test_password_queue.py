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

import httpx
import pytest
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


def client_from(app: FastAPI, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://auth.test")


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

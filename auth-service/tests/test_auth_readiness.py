"""``/readyz`` of the auth service: the library's readiness check (``gatepass.ops.readiness``)
with the issuer's own condition, a key to sign with. A database that does not answer within
``READINESS_TIMEOUT`` makes it 503, never a probe left hanging.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from auth_service.config import Settings
from auth_service.state import Services
from gatepass.testing import HangingEngine

SHORT = 0.2  # seconds; the test allows 50 times that before calling it a hang


@pytest.fixture
def auth_settings(settings_for: Callable[..., Settings]) -> Settings:
    return settings_for(readiness_timeout=SHORT)


async def test_ready_with_a_database_and_a_signing_key(client: httpx.AsyncClient) -> None:
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": True, "signing_key": True}}


async def test_a_database_that_does_not_answer_in_time_is_not_ready(
    client: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "engine", HangingEngine())
    async with asyncio.timeout(50 * SHORT):
        answer = await client.get("/readyz")
    assert answer.status_code == 503
    body: dict[str, Any] = answer.json()
    assert (body["code"], body["checks"]) == ("not_ready", {"signing_key": True, "database": False})
    assert body["detail"] == "Failing checks: database."

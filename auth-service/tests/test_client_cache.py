"""The client cache: a grant reads its client from memory, a change committed here empties it at
once, and one committed elsewhere (another replica, the ``gatepass`` command) is seen within
``CLIENT_CACHE_SECONDS``, a disable's revocation reaching over the tokens issued meanwhile."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from api_users import jose_part
from fake_clock import FakeClock
from service_clients import (
    INTROSPECTION_CLIENTS,
    client_credentials,
    introspect,
    register,
    set_disabled,
)
from sqlalchemy.ext.asyncio import async_sessionmaker

from auth_service import registry
from auth_service.config import Settings
from auth_service.state import Services


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def auth_settings(settings_for: Callable[..., Settings]) -> Settings:
    return settings_for(introspection_clients=INTROSPECTION_CLIENTS)


@pytest.fixture
def monotonic(services: Services) -> Monotonic:
    """The service's client cache, on a clock the test moves."""
    clock = Monotonic()
    services.client_cache = registry.ClientCache(clock=clock)
    registry.forget_on_commit(services.sessions, services.client_cache)
    return clock


async def test_a_change_committed_here_is_seen_at_once(
    client: httpx.AsyncClient, services: Services, monotonic: Monotonic
) -> None:
    reports = await register(services, "reports", audiences=["mail"], scopes=["mail:notify"])
    assert (await client_credentials(client, reports)).status_code == 200  # now cached
    await set_disabled(services, "reports", True)
    refused = await client_credentials(client, reports)
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"] == "invalid_client"


async def test_a_change_made_elsewhere_is_seen_within_the_cache_lifetime_and_covered_meanwhile(
    client: httpx.AsyncClient, services: Services, monotonic: Monotonic, clock: FakeClock
) -> None:
    reports = await register(services, "reports", audiences=["mail"], scopes=["mail:notify"])
    assert (await client_credentials(client, reports)).status_code == 200  # now cached
    elsewhere = async_sessionmaker(services.engine, expire_on_commit=False)  # not this process's
    async with elsewhere() as db:
        await registry.set_disabled(db, services.settings, "reports", True, now=services.clock())
    clock.advance(1.5)  # later than the disable's own second, within the cache's lifetime

    stale = await client_credentials(client, reports)  # this replica has not seen the disable yet
    assert stale.status_code == 200, stale.text
    assert (await introspect(client, stale.json()["access_token"]))["active"] is False
    # The edges know the disable from the feed alone: its cut-off is past the stale token's iat.
    feed = (await client.get("/revocations")).json()["events"]
    cut_off = [event["not_before"] for event in feed if event["kind"] == "client"]
    assert cut_off[0] > jose_part(stale.json()["access_token"], 1)["iat"]

    monotonic.now += registry.CLIENT_CACHE_SECONDS
    assert (await client_credentials(client, reports)).status_code == 401


async def test_unknown_ids_are_cached_within_a_bound(services: Services) -> None:
    cache = registry.ClientCache(capacity=3)
    for index in range(10):
        assert await cache.find(services.sessions, f"nobody-{index}") is None
    assert len(cache._entries) == 3

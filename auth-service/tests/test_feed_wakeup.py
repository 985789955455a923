"""A long poll ends as soon as there is something to read: at once for an event this process
commits, within a watch interval for one committed through another replica (two apps on one
SQLite file here). The polls' own wait never ends in these tests (a sleep that never returns, or
30 real seconds), so only a wake-up can answer them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from api_users import bearer, new_user
from asgi_clients import client_from
from fastapi import FastAPI
from feed_helpers import MovableClock, caught_up, page

import gatepass.server
from auth_service.app import create_app, running
from auth_service.clock import Sleep
from auth_service.config import Settings
from auth_service.state import Services

DEADLINE = 10.0  # seconds; the polls below would otherwise wait 30 s, or for ever


async def forever(seconds: float) -> None:
    """The service's sleep in these tests: a long poll's wait never ends by itself."""
    await asyncio.Event().wait()


async def until(condition: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), DEADLINE)


@asynccontextmanager
async def app_on(
    settings: Settings, clock: MovableClock, sleep: Sleep, *, background: bool
) -> AsyncIterator[tuple[FastAPI, Services]]:
    async with running(settings, clock, background=background, sleep=sleep) as services:
        app = create_app(settings, clock=clock)
        app.state.services = services
        yield app, services


async def logout(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    response = await client.post("/logout", headers=bearer(tokens["access_token"]))
    assert response.status_code == 204


async def test_a_commit_in_this_process_wakes_a_long_poll_at_once(
    auth_settings: Settings, clock: MovableClock
) -> None:
    async with (
        app_on(auth_settings, clock, forever, background=False) as (app, services),
        client_from(app) as client,
    ):
        _, _, tokens = await new_user(client)
        cursor = await caught_up(client)
        poll = asyncio.create_task(page(client, cursor, wait="30"))
        await until(lambda: services.feed.signal.waiting == 1)

        await logout(client, tokens)

        answer = await asyncio.wait_for(poll, DEADLINE)
        assert [e["sid"] for e in answer["events"]] == [tokens["session_id"]]
        assert services.feed.signal.waiting == 0


async def test_a_long_poll_that_goes_away_stops_waiting(
    auth_settings: Settings, clock: MovableClock
) -> None:
    async with (
        app_on(auth_settings, clock, forever, background=False) as (app, services),
        client_from(app) as client,
    ):
        cursor = await caught_up(client)
        poll = asyncio.create_task(page(client, cursor, wait="30"))
        await until(lambda: services.feed.signal.waiting == 1)

        poll.cancel()

        await until(lambda: services.feed.signal.waiting == 0)


async def test_an_event_recorded_through_another_replica_wakes_a_long_poll(
    auth_settings: Settings, clock: MovableClock
) -> None:
    """Replica A records the event; the poll on replica B, waiting 30 real seconds, is woken by
    B's own watch of the database (its background loops run, on real time)."""
    async with (
        app_on(auth_settings, clock, asyncio.sleep, background=True) as (app_a, _),
        app_on(auth_settings, clock, asyncio.sleep, background=True) as (app_b, replica_b),
        client_from(app_a) as on_a,
        client_from(app_b) as on_b,
    ):
        _, _, tokens = await new_user(on_a)
        cursor = await caught_up(on_b)
        poll = asyncio.create_task(page(on_b, cursor, wait="30"))
        await until(lambda: replica_b.feed.signal.waiting == 1)

        started = time.monotonic()
        await logout(on_a, tokens)
        answer = await asyncio.wait_for(poll, DEADLINE)

        assert [e["sid"] for e in answer["events"]] == [tokens["session_id"]]
        assert time.monotonic() - started < DEADLINE


async def test_a_server_shutting_down_ends_its_long_polls(
    auth_settings: Settings, clock: MovableClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # uvicorn waits for open requests before it stops: a long poll must not hold it for 30 s.
    async with (
        app_on(auth_settings, clock, forever, background=False) as (app, services),
        client_from(app) as client,
    ):
        cursor = await caught_up(client)
        poll = asyncio.create_task(page(client, cursor, wait="30"))
        await until(lambda: services.feed.signal.waiting == 1)

        monkeypatch.setattr(gatepass.server, "_draining", True)  # what uvicorn's shutdown sets
        await services.feed.watch()  # the background look, every WATCH_INTERVAL

        answer = await asyncio.wait_for(poll, DEADLINE)
        assert answer["events"] == []
        assert answer["cursor"] == cursor
        # A new long poll answers at once too.
        assert (await page(client, cursor, wait="30"))["events"] == []

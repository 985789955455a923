"""On PostgreSQL, revocation events become visible in id order: writers racing (each draws its id,
then commits a moment later) never let a follower of the feed skip an event, nor see one twice.

Without the advisory lock that ``revocation.record`` takes, a transaction could commit id 6
while id 5 is still uncommitted; a follower reading in between would move its cursor past 5 for
good. The app runs in-process over ASGI on a fresh database of a PostgreSQL server: the one
``GATEPASS_TEST_DATABASE_URL`` names, else a throwaway cluster (the repository's test support).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest
from asgi_clients import client_from
from auth_apps import serving
from feed_helpers import MovableClock, caught_up, page

from auth_service import revocation
from auth_service.config import Settings
from auth_service.state import Services

pytestmark = pytest.mark.postgres

WRITERS = 10
EVENTS_EACH = 20
MAX_COMMIT_DELAY = 0.02  # seconds between an insert (its id drawn) and its commit


async def write_events(svc: Services, writer: int) -> None:
    for n in range(EVENTS_EACH):
        async with svc.sessions() as db:
            await revocation.record(db, svc.settings, "jti", f"w{writer}-{n}", svc.clock())
            await db.flush()  # the id is drawn here...
            await asyncio.sleep(random.uniform(0, MAX_COMMIT_DELAY))
            await db.commit()  # ...and becomes visible here


async def test_racing_writers_never_let_a_follower_skip_or_repeat_an_event(
    postgres_url: str, settings_for: Callable[..., Settings], clock: MovableClock
) -> None:
    settings = settings_for(database_url=postgres_url)
    async with serving(settings, clock) as app, client_from(app) as client:
        svc: Services = app.state.services
        cursor = await caught_up(client)
        seen: list[dict[str, Any]] = []
        writers = asyncio.gather(*(write_events(svc, w) for w in range(WRITERS)))
        reads = 0
        while not writers.done() or reads == 0:
            body = await page(client, cursor)
            assert body["snapshot"] is False
            seen.extend(body["events"])
            cursor = body["cursor"]
            reads += 1
        await writers
        while True:  # what was committed after the last read
            body = await page(client, cursor)
            seen.extend(body["events"])
            cursor = body["cursor"]
            if not body["more"]:
                break

    ids = [event["id"] for event in seen]
    assert ids == sorted(set(ids)), "an event was seen twice, or out of order"
    assert sorted(event["jti"] for event in seen) == sorted(
        f"w{w}-{n}" for w in range(WRITERS) for n in range(EVENTS_EACH)
    ), "an event was skipped"
    assert reads > 1  # the follower read while the writers raced

"""Reading the revocation feed (``GET /revocations``) as a follower does: from a snapshot, then
page by page after a cursor, until an answer says no more."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import httpx
from auth_apps import ServiceClock


class MovableClock(ServiceClock, Protocol):
    """The conftest's ``FakeClock``, as the feed tests use it."""

    now: datetime
    slept: list[float]

    def advance(self, seconds: float) -> None: ...


async def read(
    client: httpx.AsyncClient,
    cursor: str | None = None,
    *,
    wait: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    params = {name: value for name, value in (("cursor", cursor), ("wait", wait)) if value}
    return await client.get("/revocations", params=params, headers=headers)


async def page(
    client: httpx.AsyncClient, cursor: str | None = None, **options: Any
) -> dict[str, Any]:
    """One answer, which must be a 200."""
    response = await read(client, cursor, **options)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def caught_up(client: httpx.AsyncClient, cursor: str | None = None) -> str:
    """The cursor once every page after ``cursor`` (or of the snapshot) is read."""
    body = await page(client, cursor)
    while body["more"]:
        body = await page(client, body["cursor"])
    cursor_now: str = body["cursor"]
    return cursor_now


async def events_after(client: httpx.AsyncClient, cursor: str) -> list[dict[str, Any]]:
    """Every event after ``cursor``, page by page; none of the answers may be a snapshot."""
    events: list[dict[str, Any]] = []
    more = True
    while more:
        body = await page(client, cursor)
        assert body["snapshot"] is False
        events.extend(body["events"])
        cursor, more = body["cursor"], body["more"]
    return events


def without_ids(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{name: value for name, value in e.items() if name != "id"} for e in events]

"""Fifty signups for one email at once make one account, on SQLite and on PostgreSQL: the app
in-process over ASGI, its requests racing on a pool of real connections for the same row.

A single-worker server runs every request on one event loop, as here; what decides the race is
the database's unique constraint, reached by concurrent transactions either way.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from auth_service.app import create_app, running
from tests.support.inprocess import BASE_URL, auth_settings

BODY = {"email": "race@example.com", "password": "correct horse battery staple 42"}
RACERS = 50


async def test_fifty_parallel_signups_make_one_account(
    tmp_path: Path, database_url: str | None
) -> None:
    # Room for all fifty: this is about the race on the email, not the signup limit per address
    # or the bound on the hashing queue (each has its own in-process test).
    settings = auth_settings(
        tmp_path, database_url, throttle_signup_free=100, password_queue_size=100
    )
    app = create_app(settings)
    async with running(settings, background=False) as services:
        app.state.services = services
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=60) as client:
            responses = await asyncio.gather(
                *(client.post("/signup", json=BODY) for _ in range(RACERS))
            )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 1
    assert statuses.count(409) == RACERS - 1
    assert all(r.json()["code"] == "email_taken" for r in responses if r.status_code == 409)

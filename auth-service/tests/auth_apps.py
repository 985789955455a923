"""The auth app over settings a test chooses, for a test that needs settings of its own for one
app, or a second app on the same data (another issuer name, another audience list, a replica).

``serving(settings, clock)`` starts the services as the ``services`` fixture does (migrations,
keys, no background loops; the service's ``sleep`` moves ``clock``) and yields the app over them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Protocol

from fastapi import FastAPI

from auth_service.app import create_app, running
from auth_service.config import Settings


class ServiceClock(Protocol):
    """What the service needs of the test's clock (conftest's ``FakeClock``)."""

    def __call__(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


@asynccontextmanager
async def serving(settings: Settings, clock: ServiceClock) -> AsyncIterator[FastAPI]:
    """The app over ``settings``, its services started and attached (the lifespan's job)."""
    async with running(settings, clock, background=False, sleep=clock.sleep) as services:
        app = create_app(settings, clock=clock)
        app.state.services = services
        yield app

"""The auth service and the edges wired together in one process, over ASGI: no port, no start-up.

- :func:`auth_app`: the auth app over settings (``tests.support.inprocess.auth_settings``), its
  services started without background loops. Several on one data folder share the database and
  the key-encryption key, so they sign with the same keys (replicas with other settings).
- :class:`IssuerTransport`: what an edge's HTTP client reaches. Requests to the issuer's host go
  to an auth app; any other request is recorded in :attr:`~IssuerTransport.elsewhere` (and
  answered with an empty JWKS), so a test sees an edge that fetched something it should not.
- :func:`edge_app`: an edge's ``create_app(settings, client=...)`` with its lifespan running (its
  database migrated, the issuer's keys fetched), and a client for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from auth_service.app import create_app, running
from auth_service.clock import Clock, system_clock
from auth_service.config import Settings
from gatepass.settings import EdgeAuthSettings

EDGE_URL = "http://edge.test"


@asynccontextmanager
async def auth_app(settings: Settings, clock: Clock = system_clock) -> AsyncIterator[FastAPI]:
    """The auth app over ``settings``, its services started (no loops) and attached."""
    async with running(settings, clock, background=False) as services:
        app = create_app(settings, clock=clock)
        app.state.services = services
        yield app


class IssuerTransport(httpx.AsyncBaseTransport):
    """The issuer's host to ``issuer``; anything else recorded, never sent anywhere."""

    def __init__(self, issuer: FastAPI, host: str) -> None:
        self._issuer = httpx.ASGITransport(app=issuer)
        self._host = host
        self.elsewhere: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == self._host:
            return await self._issuer.handle_async_request(request)
        self.elsewhere.append(str(request.url))
        return httpx.Response(200, json={"keys": []})


@asynccontextmanager
async def edge_app(
    create: Callable[..., FastAPI], settings: EdgeAuthSettings, transport: IssuerTransport
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the edge ``create(settings, client=...)`` builds, its lifespan running."""
    async with httpx.AsyncClient(transport=transport) as to_issuer:
        app = create(settings, client=to_issuer)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=EDGE_URL) as http,
        ):
            yield http

"""An edge service's app in one call: the scaffolding, around the edge's own routes.

An edge's factory is then wiring::

    DATABASE = ServiceDatabase("mail", Path(__file__).parent / "migrations", lock_id=0x...)
    ABOUT = About("mail", "Inbox, send, read and delete.", {"mail:read": "...", ...})

    def create_app(settings=None, *, client=None) -> FastAPI:
        settings = settings or MailSettings()
        return edge_app(settings, about=ABOUT, database=DATABASE, routers=[routes.router],
                        client=client)

What :func:`edge_app` adds, outermost first:

- the HTTP layer every gatepass app shares (:mod:`gatepass.httplayer`): the client's address
  from trusted proxies only, a request id and one access line a request, request counters
  (:mod:`gatepass.ops`), security headers, the body-size limit, ``HEAD`` wherever ``GET`` is, no
  trailing-slash redirects, API docs only where the settings allow them;
- every error as problem+json (:mod:`gatepass.problems`), RFC 6750 answers from
  :class:`~gatepass.EdgeAuth`, so routes use ``Principal`` and ``require_scopes``;
- ``/about``, ``/healthz``, ``/readyz``, ``/metrics`` (:mod:`gatepass.ops`);
- a lifespan that opens and migrates the database, opens the calls to other services
  (:mod:`gatepass.calls`: ``Calls``; with the edge's identity if it has one), then starts the
  key set (which never fails for an unreachable issuer: ``/readyz`` says 503 instead) and the
  revocation feed (read with the edge's own service token when it has an identity and no
  ``FEED_TOKEN``), and closes them all on the way out.

Nothing does I/O before the lifespan: building the app twice, or importing it, is free.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import httpx
from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry
from starlette.middleware import Middleware

from gatepass import ops
from gatepass.calls import attach_calls, open_service_calls
from gatepass.core.verifier import Check
from gatepass.fastapi import EdgeAuth
from gatepass.httplayer import app_options, install_http_layer
from gatepass.openapi import install_openapi
from gatepass.problems import install_problem_handlers
from gatepass.service import (
    About,
    EdgeService,
    EdgeServiceSettings,
    ServiceDatabase,
    attach,
    attach_database,
    open_database,
    service_of,
)

__all__ = ["FEED_SCOPE", "edge_app"]

FEED_SCOPE = "revocations:read"
"""The scope of the service token an edge reads the revocation feed with."""


def edge_app(
    settings: EdgeServiceSettings,
    *,
    about: About,
    database: ServiceDatabase,
    routers: Iterable[APIRouter],
    client: httpx.AsyncClient | None = None,
    checks: Iterable[Check] = (),
) -> FastAPI:
    """An edge app: ``routers`` behind the shared middleware, errors, probes and lifespan.

    ``client`` fetches discovery and the JWKS, and carries the calls to the token endpoint and
    to other services (tests pass one over ``httpx.MockTransport`` or an ASGI transport);
    without one the key set and the calls open their own when the lifespan starts, and close
    them. ``checks`` run on every freshly verified token (revocations need none: ``EdgeAuth``
    follows the issuer's feed).
    """
    registry = CollectorRegistry()
    auth = EdgeAuth.from_settings(settings, client=client, registry=registry, checks=checks)
    app = FastAPI(
        title=f"gatepass {about.service} service",
        version=about.version,
        summary=about.summary,
        lifespan=_lifespan,
        **app_options(settings),
    )
    attach(app, EdgeService(settings, about, database, auth, registry, client))
    install_problem_handlers(app)
    auth.install(app)
    app.include_router(ops.router)
    for router in routers:
        app.include_router(router)
    install_openapi(app, max_body_bytes=settings.max_body_bytes, server_limits=True)
    install_http_layer(
        app, settings, observers=[Middleware(ops.RequestMetricsMiddleware, registry=registry)]
    )
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Database first (a failed migration must stop the start), then the calls to other
    services (an unreadable key file must stop it too), then the key set and the feed."""
    service = service_of(app)
    settings = service.settings
    async with (
        open_database(service.database, settings) as db,
        open_service_calls(settings, client=service.client) as calls,
    ):
        feed = service.auth.feed
        if feed is not None and settings.feed_token is None and calls.has_identity:
            feed.use_tokens(calls.service_tokens(settings.feed_audience, FEED_SCOPE))
        async with service.auth:
            attach_database(app, db)
            attach_calls(app, calls)
            try:
                yield
            finally:
                attach_calls(app, None)
                attach_database(app, None)

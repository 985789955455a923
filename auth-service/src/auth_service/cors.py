"""CORS (the Fetch standard's CORS protocol) for the registered apps' web pages, on what a browser
relying party fetches across origins: the metadata and the JWKS (``/.well-known/*``), ``/token``,
``/userinfo`` and ``/revoke``.

An origin is allowed when it is the origin of one of a registered, enabled app's redirect or
post-logout redirect URIs (:func:`auth_service.registry.web_origins`): the page that receives the
code is the page that redeems it. The answer names that origin (``Access-Control-Allow-Origin``,
never ``*``) and never allows credentials: these endpoints take a bearer token or a form, never
the browser's cookies, so another site's page can read nothing it could not ask for itself. Any
other origin gets no CORS header at all, and the browser keeps the answer from its page (a
preflight from it is refused with a 403). Every answer on these paths says ``Vary: Origin``, so a
cache never hands one origin's answer to another.

The origins are read from the registry through a short cache (:data:`ORIGINS_CACHE_SECONDS`), so
a preflight costs no database read; a new app's origin is allowed within that long. A pure ASGI
middleware (like :mod:`gatepass.head`): it reads the request's headers and adds headers to the
answer, nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Final

from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth_service import registry
from auth_service.state import Services
from gatepass.problems import problem_response

__all__ = ["ORIGINS_CACHE_SECONDS", "CorsMiddleware", "WebOrigins", "install_cors"]

logger = logging.getLogger("gatepass.auth.cors")

ORIGINS_CACHE_SECONDS: Final = 5.0
PREFLIGHT_MAX_AGE: Final = 600  # seconds a browser may remember a preflight's answer
ALLOWED_HEADERS: Final = "Authorization, Content-Type"
# What a page may read of an answer beyond the CORS-safelisted headers: RFC 6750's challenge,
# the JWKS's validator.
EXPOSED_HEADERS: Final = "WWW-Authenticate, ETag"

# The paths, and the methods a page may use on each (HEAD is served as GET).
_EXACT: Final = {
    "/token": ("POST",),
    "/revoke": ("POST",),
    "/userinfo": ("GET", "POST"),
}
_WELL_KNOWN: Final = "/.well-known/"
_WELL_KNOWN_METHODS: Final = ("GET", "HEAD")


def cors_methods(path: str) -> tuple[str, ...] | None:
    """The methods a cross-origin page may use on ``path``; None where CORS is not offered."""
    if path.startswith(_WELL_KNOWN):
        return _WELL_KNOWN_METHODS
    return _EXACT.get(path)


class WebOrigins:
    """The registered apps' web origins, read again at most every ``ttl`` seconds (one reader at
    a time). A failed read keeps the last set (or none), and is tried again next time."""

    def __init__(
        self, *, ttl: float = ORIGINS_CACHE_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl, self._clock = ttl, clock
        self._origins: frozenset[str] = frozenset()
        self._until = float("-inf")
        self._lock = asyncio.Lock()

    async def allowed(self, services: Services) -> frozenset[str]:
        if self._clock() < self._until:
            return self._origins
        async with self._lock:
            if self._clock() >= self._until:
                await self._reload(services)
        return self._origins

    async def _reload(self, services: Services) -> None:
        try:
            async with services.sessions() as db:
                apps = [
                    client
                    for client in await registry.listed(db)
                    if client.kind == "app" and not client.disabled
                ]
        except (SQLAlchemyError, OSError) as exc:
            logger.warning("cannot read the apps' web origins: %s", type(exc).__name__)
        else:
            self._origins = frozenset(_origins_of(apps))
        self._until = self._clock() + self._ttl


def _origins_of(apps: Iterable[registry.RegisteredClient]) -> set[str]:
    origins: set[str] = set()
    for app in apps:
        origins |= registry.web_origins(app)
    return origins


class CorsMiddleware:
    """Answer preflights and mark answers for the registered apps' origins; see the module."""

    def __init__(self, app: ASGIApp, *, origins: WebOrigins | None = None) -> None:
        self.app = app
        self.origins = origins or WebOrigins()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        methods = cors_methods(scope["path"]) if scope["type"] == "http" else None
        if methods is None:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        allowed = origin is not None and await self._allows(scope, origin)
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await _preflight(scope, receive, send, origin if allowed else None, methods)
            return

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                response = MutableHeaders(scope=message)
                response.add_vary_header("Origin")
                if allowed and origin is not None:
                    response["Access-Control-Allow-Origin"] = origin
                    response["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
            await send(message)

        await self.app(scope, receive, send_marked)

    async def _allows(self, scope: Scope, origin: str) -> bool:
        services: Services | None = getattr(scope["app"].state, "services", None)
        if services is None:  # not started (no lifespan yet): nobody is registered
            return False
        return origin.lower() in await self.origins.allowed(services)


async def _preflight(
    scope: Scope, receive: Receive, send: Send, origin: str | None, methods: tuple[str, ...]
) -> None:
    """204 with what the page may send, for an allowed origin; else a 403 that allows nothing."""
    if origin is None:
        refusal = problem_response(
            403,
            "origin_not_allowed",
            "Origin not allowed",
            "Only the registered apps' web pages may call this from a browser.",
            headers={"Vary": "Origin"},
        )
        await refusal(scope, receive, send)
        return
    headers = [
        (b"vary", b"Origin"),
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-allow-methods", ", ".join(methods).encode()),
        (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
        (b"access-control-max-age", str(PREFLIGHT_MAX_AGE).encode()),
    ]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def install_cors(app: FastAPI) -> None:
    """CORS for registered apps' origins on what browsers fetch across origins."""
    app.add_middleware(CorsMiddleware)

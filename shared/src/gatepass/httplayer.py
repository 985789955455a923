"""The HTTP layer every gatepass app shares (the auth service's and every edge's).

- :func:`app_options`: the ``FastAPI(...)`` arguments: no trailing-slash redirects (Starlette
  builds their ``Location`` from the ``Host`` header: an open redirect for whoever sets it), so
  ``/inbox/`` is a 404; ``/docs``, ``/redoc`` and ``/openapi.json`` only where the settings say
  (``API_DOCS``; by default in development, not in production).
- :func:`install_http_layer`: the middleware, outermost first: the client's address
  (:mod:`gatepass.proxies`), the request id and access line (:mod:`gatepass.logs`), the service's
  own observers (request counters), the security headers (:mod:`gatepass.headers`), the body-size
  limit (:mod:`gatepass.limits`), ``HEAD`` as ``GET`` (:mod:`gatepass.head`).

The HTTP server's own limits (header size, read time, concurrency) are :mod:`gatepass.server`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from starlette.middleware import Middleware

from gatepass.head import HeadAsGetMiddleware
from gatepass.headers import SecurityHeadersMiddleware
from gatepass.limits import BodySizeLimitMiddleware
from gatepass.logs import RequestContextMiddleware
from gatepass.proxies import ClientAddressMiddleware
from gatepass.settings import ServiceSettings

__all__ = ["app_options", "install_http_layer"]


def app_options(settings: ServiceSettings) -> dict[str, Any]:
    """Keyword arguments for ``FastAPI(...)``: slash redirects off, API docs as configured."""
    docs = settings.docs_enabled
    return {
        "redirect_slashes": False,
        "docs_url": "/docs" if docs else None,
        "redoc_url": "/redoc" if docs else None,
        "openapi_url": "/openapi.json" if docs else None,
    }


def install_http_layer(
    app: FastAPI, settings: ServiceSettings, *, observers: Sequence[Middleware] = ()
) -> None:
    """Add the shared middleware to ``app`` (``observers`` go just inside the access line)."""
    stack = [
        Middleware(ClientAddressMiddleware, trusted=settings.trusted_proxies),
        Middleware(RequestContextMiddleware),
        *observers,
        Middleware(SecurityHeadersMiddleware),
        Middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes),
        Middleware(HeadAsGetMiddleware),
    ]
    for middleware in reversed(stack):  # each call wraps everything added before it
        app.add_middleware(middleware.cls, *middleware.args, **middleware.kwargs)

"""``HEAD`` wherever ``GET`` is, for every route of an app, in one place.

RFC 9110 §9.3.2: HEAD is GET without the content. FastAPI routes list their methods, so a ``GET``
route answers ``HEAD`` with 405 (a cache or a monitor checking the JWKS gets nothing). Rather than
add ``HEAD`` to every route (it would also double the OpenAPI document), the app is asked for the
``GET`` and the body is dropped: same status, same headers (``Content-Length``, ``ETag``,
``Cache-Control``), no content. Routes that only take other methods answer ``HEAD`` as they
answer ``GET``: 405.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["HeadAsGetMiddleware"]

# What the router writes into the scope that outer middleware reads (the request counters).
_ROUTING_KEYS = ("route", "endpoint", "path_params")


class HeadAsGetMiddleware:
    """Serve ``HEAD`` as ``GET`` without the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        # A copy: the server keeps its own scope saying HEAD, and sends no content for it.
        as_get = {**scope, "method": "GET"}

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        try:
            await self.app(as_get, receive, send_headers_only)
        finally:
            for key in _ROUTING_KEYS:
                if key in as_get and key not in scope:
                    scope[key] = as_get[key]

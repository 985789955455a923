"""Headers every answer of every gatepass service carries, unless it says otherwise.

- ``X-Content-Type-Options: nosniff`` on every answer: a browser never guesses a type (a JSON
  body with a client-chosen string in it is never run as HTML or script).
- ``Cache-Control: no-store`` on every answer that did not set its own ``Cache-Control``: answers
  carry tokens and personal data, and no cache (a browser's, a proxy's) may keep them. The public,
  cacheable documents (the JWKS, the discovery documents) set their own and keep it.

:class:`SecurityHeadersMiddleware` adds them to what the app answers; :data:`SECURITY_HEADERS`
is for answers made outside it (the 500 of an unexpected error, the HTTP server's own refusals).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SECURITY_HEADERS", "SecurityHeadersMiddleware"]

SECURITY_HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
_RAW = [
    (name.lower().encode("latin-1"), value.encode("latin-1"))
    for name, value in SECURITY_HEADERS.items()
]


class SecurityHeadersMiddleware:
    """Add each of :data:`SECURITY_HEADERS` to a response that does not have that header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_security_headers(message.get("headers", ()))
            await send(message)

        await self.app(scope, receive, send_with_headers)


def with_security_headers(
    headers: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...],
) -> list[tuple[bytes, bytes]]:
    """``headers`` plus each security header it lacks (names compared case-insensitively)."""
    present = {name.lower() for name, _ in headers}
    return [*headers, *((name, value) for name, value in _RAW if name not in present)]

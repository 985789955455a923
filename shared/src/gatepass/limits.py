"""A request-body size limit, enforced before any handler reads the body.

A declared ``Content-Length`` over the limit is refused before the app runs. A body sent without
one (``Transfer-Encoding: chunked``) is counted as the app reads it: past the limit, reading
raises :class:`BodyTooLargeError`, an ``HTTPException(413)``: FastAPI lets those through its body
parsing (any other error there becomes a 400), so every route answers 413 problem+json, whether
FastAPI reads the body or the route does.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gatepass.problems import PROBLEM_JSON, TYPE_BASE


class BodyTooLargeError(HTTPException):
    """The body grew past the limit while being read (answered 413 payload_too_large)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"The request body is larger than {max_bytes} bytes.")


_TOO_LARGE = "Payload too large"


class BodySizeLimitMiddleware:
    """Answer 413 for a body over ``max_bytes``, by ``Content-Length`` or while streaming."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = 64 * 1024) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _reject(
                        send, 400, "bad_request", "Bad request", "Content-Length is not a number."
                    )
                    return
                if declared > self.max_bytes:
                    await _reject(send, 413, "payload_too_large", _TOO_LARGE, self._detail())
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLargeError:
            if not started:
                await _reject(send, 413, "payload_too_large", _TOO_LARGE, self._detail())

    def _detail(self) -> str:
        return f"The request body is larger than {self.max_bytes} bytes."


async def _reject(send: Send, status: int, code: str, title: str, detail: str) -> None:
    body = json.dumps(
        {
            "type": TYPE_BASE + code,
            "title": title,
            "status": status,
            "detail": detail,
            "code": code,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

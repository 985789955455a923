"""What one connection may cost the HTTP server: header size, read time, idle time, concurrency.

What uvicorn 0.54 offers, and what it leaves open:

- **Header size.** ``h11_max_incomplete_event_size`` caps h11's buffer (answered 400, not 431);
  httptools, the parser uvicorn picks when it is installed (it is, with ``uvicorn[standard]``),
  has no cap at all: an 8 MB header was answered 200, and ten unfinished 50 MB ones cost an edge
  half a gigabyte.
- **Read time.** Nothing bounds how long headers or a body may take to arrive, nor the wait for a
  new connection's first byte: a half-sent request held a connection for over a minute.
- **Keep-alive.** ``timeout_keep_alive`` closes a connection idle after a response. Used as is.
- **Concurrency.** ``limit_concurrency`` answers a plain-text 503 once connections or running
  requests reach the limit, but decides when a request's headers are complete: idle and half-open
  connections still hold their descriptors (140 of them starved an edge with 128).

:func:`uvicorn_options` fills the gaps on uvicorn's supported extension point, a protocol class
passed as ``http=``: :class:`LimitedHttpProtocol`, uvicorn's httptools protocol plus

- request line and headers over ``max_header_bytes``: 431, then closed (the parser is never fed
  more than the limit, so memory stays bounded);
- headers not complete ``header_timeout`` seconds after the connection opened (or after the
  request's first byte, for the next request on a kept-alive connection): 408, then closed; a
  body not complete ``body_timeout`` seconds after its headers: closed;
- a connection beyond ``concurrency_limit`` open ones: 503 at once, then closed; a request while
  ``concurrency_limit`` requests are running: 503. Every refusal is problem+json with the security
  headers, like the apps' own answers.

The limit is also kept below the process's file-descriptor limit (:func:`effective_limit`).
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from gatepass.headers import SECURITY_HEADERS
from gatepass.problems import PROBLEM_JSON, TYPE_BASE
from gatepass.settings import ServiceSettings

__all__ = [
    "DESCRIPTOR_RESERVE",
    "LimitedHttpProtocol",
    "ServerLimits",
    "effective_limit",
    "uvicorn_options",
]

# File descriptors kept for everything but client connections: the listening socket, database
# connections, the JWKS fetch, log files, the interpreter's own.
DESCRIPTOR_RESERVE = 64

log = logging.getLogger("gatepass.server")


@dataclass(frozen=True)
class ServerLimits:
    """The limits one server applies to each connection (see the module's description)."""

    max_header_bytes: int = 32 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    concurrency_limit: int = 512

    @classmethod
    def of(cls, settings: ServiceSettings, *, descriptors: int | None = None) -> ServerLimits:
        """The settings' limits, the concurrency limit lowered to fit ``descriptors``."""
        return cls(
            max_header_bytes=settings.max_header_bytes,
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
            concurrency_limit=effective_limit(settings.concurrency_limit, descriptors),
        )


def uvicorn_options(settings: ServiceSettings) -> dict[str, Any]:
    """The ``uvicorn.run`` arguments that bound connections, and keep forwarding headers out.

    ``proxy_headers=False``: uvicorn would otherwise believe ``X-Forwarded-For`` from whatever
    ``FORWARDED_ALLOW_IPS`` says (127.0.0.1 by default); :mod:`gatepass.proxies` decides instead.
    """
    return {
        "http": protocol_class(ServerLimits.of(settings, descriptors=_descriptor_limit())),
        "ws": "none",  # no service speaks WebSocket: an upgrade is an ordinary request
        "proxy_headers": False,
        "timeout_keep_alive": settings.keep_alive_timeout,
    }


def protocol_class(limits: ServerLimits) -> type[LimitedHttpProtocol]:
    """:class:`LimitedHttpProtocol` with ``limits`` (uvicorn builds the protocol itself)."""

    class ConfiguredHttpProtocol(LimitedHttpProtocol):
        server_limits = limits

    return ConfiguredHttpProtocol


def effective_limit(limit: int, descriptors: int | None) -> int:
    """``limit``, lowered so connections cannot use the descriptors the process needs."""
    if descriptors is None or limit + DESCRIPTOR_RESERVE <= descriptors:
        return limit
    lowered = max(1, descriptors - DESCRIPTOR_RESERVE)
    log.warning(
        "concurrency limit lowered to fit the file-descriptor limit",
        extra={"configured": limit, "effective": lowered, "descriptors": descriptors},
    )
    return lowered


def _descriptor_limit() -> int | None:
    """The soft ``RLIMIT_NOFILE``, where there is one."""
    try:
        import resource  # noqa: PLC0415 (POSIX only)
    except ImportError:  # pragma: no cover (Windows)
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


_draining = False


def draining() -> bool:
    """Whether this process's server began a graceful shutdown: uvicorn asked each connection to
    finish its request. A request that would wait (a long poll) should answer now, or the
    shutdown waits for it, up to the runner's grace period. Never true outside uvicorn."""
    return _draining


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with :class:`ServerLimits` (see the module's description).

    Request phases, as the parser reports them: waiting (no byte of a request yet), headers
    (``on_message_begin`` to ``on_headers_complete``), body (to ``on_message_complete``). One
    timer runs while a request is partly received: from the connection's start for the first
    request, from a later request's first byte, and from the end of the headers for a body.
    """

    server_limits: ClassVar[ServerLimits] = ServerLimits()

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._in_message = False
        self._headers_done = False
        self._header_bytes = 0
        self._read_timer: asyncio.TimerHandle | None = None

    # Connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.server_limits.concurrency_limit:
            self._refuse(503, "server_busy", "The server is busy; try again.", retry_after=1)
            return
        self._start_timer(self.server_limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: say so to requests that would wait (:func:`draining`)."""
        global _draining  # one server per process  # noqa: PLW0603
        _draining = True
        super().shutdown()

    def data_received(self, data: bytes) -> None:
        """Feed the parser, never more than the header allowance while headers are read."""
        limit = self.server_limits.max_header_bytes
        while data and self._reading_headers() and not self.transport.is_closing():
            room = limit - self._header_bytes
            if room <= 0:
                self._refuse(431, "headers_too_large", f"Request headers over {limit} bytes.")
                return
            chunk, data = data[:room], data[room:]
            self._header_bytes += len(chunk)
            super().data_received(chunk)
        if data and not self.transport.is_closing():
            super().data_received(data)
        self._time_partial_request()

    def send_400_response(self, msg: str) -> None:
        """A request the parser refuses: problem+json, like every other answer."""
        self._refuse(400, "malformed_request", "The request is not valid HTTP/1.1.")

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_message = True
        self._headers_done = False

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self._stop_timer()
        busy = len(self.tasks) >= self.server_limits.concurrency_limit
        self.app = _busy if busy else self.config.loaded_app
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_message = False
        self._header_bytes = 0
        self._stop_timer()
        super().on_message_complete()

    # Limits

    def _reading_headers(self) -> bool:
        return not (self._in_message and self._headers_done)

    def _time_partial_request(self) -> None:
        """After a feed: a request cut short starts its phase's clock, if none is running."""
        if self._in_message and self._read_timer is None and not self.transport.is_closing():
            limits = self.server_limits
            self._start_timer(limits.body_timeout if self._headers_done else limits.header_timeout)

    def _start_timer(self, seconds: float) -> None:
        self._stop_timer()
        self._read_timer = self.loop.call_later(seconds, self._read_timed_out)

    def _stop_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        """Too slow: 408 for headers (nothing else is answering yet), else just close."""
        self._read_timer = None
        if self.transport.is_closing():
            return
        in_body = self._headers_done and self._in_message
        log.debug("request read timed out", extra={"phase": "body" if in_body else "headers"})
        if in_body:  # the request under way has (or will have) its own answer: just hang up
            self.transport.close()
        else:
            self._refuse(408, "request_timeout", "The request headers took too long.")

    def _refuse(
        self, status: int, code: str, detail: str, *, retry_after: int | None = None
    ) -> None:
        """Answer ``status`` ourselves and close the connection.

        If an earlier (pipelined) request's answer is still being written, nothing is added to
        it: the connection is only closed.
        """
        self._stop_timer()
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()
            return
        headers, body = refusal(status, code, detail, retry_after=retry_after)
        lines = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n".encode("latin-1")]
        for name, value in [*self.server_state.default_headers, *headers]:
            lines.append(name + b": " + value + b"\r\n")
        self.transport.write(b"".join([*lines, b"\r\n", body]))
        self.transport.close()


def refusal(
    status: int, code: str, detail: str, *, retry_after: int | None = None
) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The headers and problem+json body of an answer the server gives on its own."""
    title = http.HTTPStatus(status).phrase
    body = json.dumps(
        {"type": TYPE_BASE + code, "title": title, "status": status, "detail": detail, "code": code}
    ).encode()
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *((name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    return headers, body


_BUSY_HEADERS, _BUSY_BODY = refusal(
    503, "server_busy", "Too many requests are running; try again.", retry_after=1
)


async def _busy(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """The app a request gets while ``concurrency_limit`` requests are running."""
    await send({"type": "http.response.start", "status": 503, "headers": _BUSY_HEADERS})
    await send({"type": "http.response.body", "body": _BUSY_BODY, "more_body": False})

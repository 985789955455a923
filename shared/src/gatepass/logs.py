"""Structured logs with a request id, and the ASGI middleware that sets it.

The access line names the method, the path (never the query string: tokens travel there in some
clients), the status and the duration. Request and response bodies and headers are never logged,
so a password, an access token or a refresh token cannot reach a log line from here.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import sys
import time
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "gatepass_request_id", default=None
)

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Attributes every record has, and uvicorn's ANSI-coloured duplicate of its message.
_STD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {
    "message",
    "asctime",
    "color_message",
}

access_log = logging.getLogger("gatepass.access")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request id, and any ``extra``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = request_id_var.get()
        if rid:
            entry["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """One line a record: ``time level logger: message key=value ... [request id]``.

    A path, a header or an exception's message is the client's text, so nothing in it may start a
    line of its own: control characters (CR, LF, ESC, ...) and Unicode line separators are
    escaped in the message and in every ``extra`` (``\\n``, ``\\x1b``, ``\\u2028``); an extra
    with a space, a quote or an ``=`` is quoted, so it cannot pass for another ``key=value``. A
    traceback keeps its lines, each indented by ``  | `` so none can pass for a record.
    """

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = escape_controls(self.formatMessage(record))
        extras = {
            k: v for k, v in vars(record).items() if k not in _STD_ATTRS and not k.startswith("_")
        }
        if extras:
            line += " " + " ".join(
                f"{escape_controls(str(k))}={_text_value(v)}" for k, v in extras.items()
            )
        rid = request_id_var.get()
        if rid:
            line += f" [{rid}]"
        # Not logging's cached exc_text: another handler may have formatted it unescaped.
        if record.exc_info:
            line += "\n" + _indented(self.formatException(record.exc_info))
        elif record.exc_text:
            line += "\n" + _indented(record.exc_text)
        if record.stack_info:
            line += "\n" + _indented(self.formatStack(record.stack_info))
        return line


# C0 controls, DEL, C1 controls, and the Unicode line and paragraph separators.
_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029]
_ESCAPES = {
    code: {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}.get(
        code, f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    )
    for code in _CONTROLS
}
_NEEDS_QUOTES = re.compile(r'[\s"=]')


def escape_controls(text: str) -> str:
    """``text`` with every control character and line separator written as an escape."""
    return text.translate(_ESCAPES)


def _text_value(value: object) -> str:
    """An extra's value for a text line: escaped, and quoted if it has a space, quote or ``=``."""
    text = str(value)
    if text and not _NEEDS_QUOTES.search(text):
        return escape_controls(text)
    return '"' + escape_controls(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'


def _indented(text: str) -> str:
    """Each line of a traceback escaped and indented, so no line of it looks like a record."""
    return "\n".join("  | " + escape_controls(line) for line in text.splitlines())


def configure_logging(level: str = "INFO", *, json_logs: bool = False) -> None:
    """Route gatepass and uvicorn logs through one handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if json_logs
        else TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # uvicorn's own access log prints the query string; ours does not.
    logging.getLogger("uvicorn.access").disabled = True


class RequestContextMiddleware:
    """Give each request an id (``X-Request-ID`` if well-formed, else a new one) and log it once."""

    def __init__(self, app: ASGIApp, *, header: str = "x-request-id") -> None:
        self.app = app
        self.header = header.lower().encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = self._incoming_id(scope) or secrets.token_hex(8)
        token = request_id_var.set(rid)
        start = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((self.header, rid.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            client = scope.get("client")
            access_log.info(
                "request",
                extra={
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - start) * 1000, 2),
                    "client": client[0] if client else None,
                },
            )
            request_id_var.reset(token)

    def _incoming_id(self, scope: Scope) -> str | None:
        for name, value in scope.get("headers", []):
            if name == self.header:
                text = value.decode("latin-1")
                return text if _REQUEST_ID_RE.match(text) else None
        return None

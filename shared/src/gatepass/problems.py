"""RFC 9457 problem details, owned by the exception that raises them.

Every error a gatepass service answers with is a :class:`ProblemError` (or a subclass): it carries
its HTTP status, a short machine-readable ``code`` (used as the problem ``type`` suffix and, for
bearer-token errors, as the RFC 6750 ``error`` value) and a human ``detail``. The mapping to HTTP
lives in one place, :func:`install_problem_handlers`.

Nothing a client sent is ever echoed back: validation errors keep the location and the message of
each error but drop pydantic's ``input`` (it may be a password).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from gatepass.headers import SECURITY_HEADERS

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://gatepass.dev/problems/"

log = logging.getLogger("gatepass.problems")


class ProblemError(Exception):
    """An error with an HTTP status and a machine-readable code."""

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        if title is not None:
            self.title = title
        self.detail = detail or self.title
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})
        super().__init__(self.detail)

    def to_dict(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_BASE + self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """Build a problem+json response without raising."""
    err = ProblemError(detail, status=status, code=code, title=title, headers=headers, extra=extra)
    return _render(err, None)


def _render(err: ProblemError, request: Request | None) -> JSONResponse:
    instance = request.url.path if request is not None else None
    return JSONResponse(
        err.to_dict(instance),
        status_code=err.status,
        headers=err.headers,
        media_type=PROBLEM_JSON,
    )


_HTTP_CODES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    422: ("validation_error", "Request validation failed"),
    429: ("too_many_requests", "Too many requests"),
    503: ("service_unavailable", "Service unavailable"),
}


def _public_validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for error in errors:
        if not isinstance(error, Mapping):
            continue
        out.append(
            {
                "loc": [str(part) for part in error.get("loc", ())],
                "msg": str(error.get("msg", "invalid")),
                "type": str(error.get("type", "value_error")),
            }
        )
    return out


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return _render(exc, request)


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code, title = _HTTP_CODES.get(exc.status_code, ("error", "Error"))
    detail = exc.detail if isinstance(exc.detail, str) else title
    err = ProblemError(
        detail, status=exc.status_code, code=code, title=title, headers=exc.headers or {}
    )
    return _render(err, request)


async def _on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = _public_validation_errors(exc.errors())
    json_invalid = any(e["type"] in {"json_invalid", "model_attributes_type"} for e in errors)
    err = ProblemError(
        "The request body is not valid JSON." if json_invalid else "The request is not valid.",
        status=400 if json_invalid else 422,
        code="malformed_request" if json_invalid else "validation_error",
        title="Malformed request" if json_invalid else "Request validation failed",
        extra={"errors": errors},
    )
    return _render(err, request)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    # The traceback goes to the log (which never carries request bodies), never to the client.
    log.error("unhandled error", exc_info=exc)
    err = ProblemError(
        "The server could not complete the request.",
        status=500,
        code="internal_error",
        title="Internal server error",
        # Sent from outside every middleware (Starlette's ServerErrorMiddleware), so it carries
        # the security headers itself.
        headers=SECURITY_HEADERS,
    )
    return _render(err, request)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` as problem+json."""
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(Exception, _on_unexpected)

"""OpenAPI documents that tell the truth about errors, form bodies and authentication.

FastAPI documents what a route answers when all goes well, and a 422 of its own shape that no
gatepass service sends. This module states the rest, once for every service:

- a route lists the errors it can answer with :func:`problem_responses` (RFC 9457
  ``application/problem+json``, ``$ref`` to the ``Problem`` schema, ``status`` pinned to the HTTP
  status) or, on the OAuth endpoints, :func:`oauth_error_responses` (the RFC 6749 §5.2 object);
  headers every such answer carries (:data:`CHALLENGE`, :data:`RETRY_AFTER`) are declared with it;
- a route that needs a token says so with ``openapi_extra=bearer_security("mail:read")`` (OpenAPI
  3.1 lets an ``http`` scheme's requirement list the roles, here the scopes, it needs);
- a form-encoded body that the route parses itself is declared with :func:`form_request_body`;
- :func:`install_openapi` adds what holds for every route of a service rather than for one:
  the shared schemas and security schemes, the 422 (problem+json, not FastAPI's shape) wherever a
  route has parameters or a body, the 400 of an unparsable JSON body, the 413 of the body-size
  limit on every route that takes a body, the 503 of load shedding on every route; and, in the
  document's description, what is refused before any route is chosen (a body over the limit on
  a route that takes none; the HTTP server's own 400, 408, 431 and 503).

Only what a route can really answer is declared: the schemathesis run in the test suite
(``tests/test_api_fuzz.py``) checks every answer of all three services against these documents.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

from gatepass.problems import PROBLEM_JSON, TYPE_BASE

__all__ = [
    "BEARER",
    "CHALLENGE",
    "CHALLENGE_IF_SCOPE",
    "CLIENT_BASIC",
    "FORM",
    "METRICS_RESPONSE",
    "OAUTH_ERROR",
    "PROBLEM",
    "RETRY_AFTER",
    "FormField",
    "Header",
    "Responses",
    "bearer_security",
    "bearer_security_any",
    "client_security",
    "edge_bearer_responses",
    "form_request_body",
    "install_openapi",
    "json_body_examples",
    "merge_responses",
    "oauth_error_responses",
    "problem_responses",
]

Responses = dict[int | str, dict[str, Any]]
"""What FastAPI's ``responses=`` takes."""

PROBLEM = "Problem"
OAUTH_ERROR = "OAuthError"
BEARER = "bearer"
CLIENT_BASIC = "clientBasic"
FORM = "application/x-www-form-urlencoded"

_SCHEMAS = "#/components/schemas/"
_FASTAPI_VALIDATION = {"HTTPValidationError", "ValidationError"}
# RFC 6749 §5.2: "error" and "error_description" hold only %x20-21 / %x23-5B / %x5D-7E.
_OAUTH_TEXT = r"^[ !#-\[\]-~]*$"
_OAUTH_CODE = r"^[ !#-\[\]-~]+$"


@dataclass(frozen=True)
class Header:
    """A response header a documented answer carries (``required``: always)."""

    name: str
    description: str
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = True

    def as_openapi(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "required": self.required,
            "schema": dict(self.schema),
        }


RETRY_AFTER = Header(
    "Retry-After",
    "Seconds to wait before trying again.",
    {"type": "string", "pattern": "^[0-9]+$"},
)
CHALLENGE = Header(
    "WWW-Authenticate",
    "The RFC 6750 Bearer challenge: realm, and the error when a token was presented.",
    {"type": "string", "pattern": "^Bearer realm="},
)
CHALLENGE_IF_SCOPE = Header(
    "WWW-Authenticate",
    'The RFC 6750 challenge with error="insufficient_scope" and the scopes needed, when a scope '
    "is what is missing.",
    {"type": "string", "pattern": "^Bearer realm="},
    required=False,
)

METRICS_RESPONSE: Responses = {
    200: {
        "description": "Prometheus text exposition format.",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
}
"""``responses=`` of a ``/metrics`` route (``response_class=Response``)."""

_DESCRIPTIONS = {
    400: "Malformed request.",
    401: "Authentication required, or the credentials are not valid.",
    403: "Forbidden.",
    404: "Not found.",
    409: "Conflict.",
    413: "The request body is larger than the service accepts.",
    422: "The request is not valid: the problem's `errors` say where and why.",
    429: "Too many attempts; wait `Retry-After` seconds.",
    503: "Temporarily unavailable; try again later.",
}


def problem_responses(
    *statuses: int,
    descriptions: Mapping[int, str] | None = None,
    headers: Mapping[int, Sequence[Header]] | None = None,
) -> Responses:
    """``responses=`` for the problem+json errors a route can answer.

    A 429 always carries ``Retry-After`` (every gatepass throttle sends it); other headers are
    named per status in ``headers``, e.g. ``{401: [CHALLENGE]}``.
    """
    return {
        status: _response(
            status,
            PROBLEM_JSON,
            _problem_schema(status),
            (descriptions or {}).get(status),
            _headers_for(status, headers),
        )
        for status in statuses
    }


def oauth_error_responses(
    *statuses: int,
    descriptions: Mapping[int, str] | None = None,
    headers: Mapping[int, Sequence[Header]] | None = None,
) -> Responses:
    """``responses=`` for an OAuth endpoint's RFC 6749 §5.2 errors (``application/json``)."""
    return {
        status: _response(
            status,
            "application/json",
            {"$ref": _SCHEMAS + OAUTH_ERROR},
            (descriptions or {}).get(status),
            _headers_for(status, headers),
        )
        for status in statuses
    }


def edge_bearer_responses() -> Responses:
    """What :class:`~gatepass.EdgeAuth` answers on a protected route, before the route runs.

    400 ``invalid_request`` (two tokens, or one that is not a token), 401 (no token, a bad one),
    403 (a scope missing, a caller of the wrong kind, or a cookie-borne unsafe request without
    the CSRF pair), 503 with ``Retry-After`` (no usable keys: the issuer unreachable past
    ``max_staleness``).
    """
    return problem_responses(
        400,
        401,
        403,
        503,
        descriptions={
            400: "More than one access token, or one that is not a bearer token.",
            401: "No access token, or one that is not valid (the challenge says why).",
            403: "The access token lacks a scope this route needs, or is of the wrong kind "
            "(`caller_not_allowed`: a service's token where users call, or a user's where "
            "services call).",
            503: "The service cannot verify access tokens right now (no usable issuer keys).",
        },
        headers={400: [CHALLENGE], 401: [CHALLENGE], 403: [CHALLENGE_IF_SCOPE], 503: [RETRY_AFTER]},
    )


def merge_responses(*parts: Mapping[int | str, Mapping[str, Any]]) -> Responses:
    """Several ``responses=`` dicts as one; a status in more than one keeps every media type,
    every header and both descriptions."""
    merged: Responses = {}
    for part in parts:
        for status, response in part.items():
            if status in merged:
                merged[status] = _merge_one(merged[status], response)
            else:
                merged[status] = _copy(response)
    return merged


def bearer_security(*scopes: str) -> dict[str, Any]:
    """``openapi_extra=`` for a route that needs an access token (with these scopes)."""
    return {"security": [{BEARER: sorted(scopes)}]}


def bearer_security_any(*alternatives: Iterable[str]) -> dict[str, Any]:
    """``openapi_extra=`` for a route that takes a token with any one of these sets of scopes."""
    return {"security": [{BEARER: sorted(scopes)} for scopes in alternatives]}


def client_security(*, optional: bool = False) -> list[dict[str, list[str]]]:
    """The ``security`` of an endpoint taking HTTP Basic client credentials (RFC 6749 §2.3.1);
    ``optional``: public clients may call it without."""
    return [{}, {CLIENT_BASIC: []}] if optional else [{CLIENT_BASIC: []}]


def json_body_examples(**examples: Mapping[str, Any]) -> dict[str, Any]:
    """``openapi_extra=`` naming examples of a JSON request body (``/docs`` shows them, and the
    schemathesis run sends them before anything it generates)."""
    named = {name: {"value": dict(value)} for name, value in examples.items()}
    return {"requestBody": {"content": {"application/json": {"examples": named}}}}


@dataclass(frozen=True)
class FormField:
    """One parameter of a form-encoded body."""

    description: str
    required: bool = False
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})


def form_request_body(fields: Mapping[str, FormField]) -> dict[str, Any]:
    """``openapi_extra=`` for a route that reads an ``application/x-www-form-urlencoded`` body
    itself (FastAPI then knows nothing of it, and parses nothing)."""
    properties = {
        name: {**dict(spec.schema), "description": spec.description}
        for name, spec in fields.items()
    }
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    required = [name for name, spec in fields.items() if spec.required]
    if required:
        schema["required"] = required
    return {"requestBody": {"required": True, "content": {FORM: {"schema": schema}}}}


def install_openapi(
    app: FastAPI,
    *,
    max_body_bytes: int | None = None,
    server_limits: bool = False,
    bearer_description: str = "An access token from the gatepass auth service (RFC 9068 JWT).",
) -> None:
    """Make ``app.openapi()`` add the service-wide truths (see the module docstring).

    ``max_body_bytes``: the body-size limit (:mod:`gatepass.limits`) in front of every route.
    ``server_limits``: the service runs under :mod:`gatepass.server`'s limits, so any operation
    may be shed with 503 (concurrency limit), and the server itself refuses some requests before
    any route (400, 408, 431).
    """
    facts = _Facts(max_body_bytes, server_limits, bearer_description)
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            _complete(document, facts)
            app.openapi_schema = document
        return app.openapi_schema

    setattr(app, "openapi", openapi)  # noqa: B010 - mypy refuses assigning to a method


# -- the document-wide pass ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Facts:
    max_body_bytes: int | None
    server_limits: bool
    bearer_description: str


_SHED = {
    503: "Over capacity: the server sheds load past its concurrency limit (`server_busy`), on "
    "any route; wait `Retry-After` seconds."
}


def _complete(document: dict[str, Any], facts: _Facts) -> None:
    for operation in _operations(document):
        _document_validation(operation)
        if "requestBody" in operation:
            _document_body(operation, facts.max_body_bytes)
        if facts.server_limits:
            shed = problem_responses(503, descriptions=_SHED, headers={503: [RETRY_AFTER]})
            _add(operation.setdefault("responses", {}), shed)
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(_shared_schemas())
    _drop_unreferenced(document, schemas, _FASTAPI_VALIDATION)
    _drop_unreferenced(document, schemas, {PROBLEM, OAUTH_ERROR, "ValidationIssue"})
    schemes = _security_schemes(document, facts.bearer_description)
    if schemes:
        components["securitySchemes"] = schemes
    info = document.setdefault("info", {})
    for sentence in _request_level_refusals(facts):
        info["description"] = _join(info.get("description"), sentence)


def _request_level_refusals(facts: _Facts) -> list[str]:
    """What is refused before any route is chosen, so no operation can list it."""
    said = []
    if facts.max_body_bytes is not None:
        said.append(
            f"A request whose body is over {facts.max_body_bytes} bytes gets 413 "
            "(`application/problem+json`) before it reaches a route, whatever the route; "
            "operations that take a body list it."
        )
    if facts.server_limits:
        said.append(
            "The HTTP server refuses, before any route and then closes the connection: a request "
            "that is not HTTP/1.1 (400 `malformed_request`), headers that take too long (408 "
            "`request_timeout`) or are too large (431 `headers_too_large`), a connection past "
            "the concurrency limit (503 `server_busy`, `Retry-After`); all "
            "`application/problem+json`."
        )
    return said


def _operations(document: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
    for item in document.get("paths", {}).values():
        for method, operation in item.items():
            if method in {"get", "put", "post", "delete", "patch", "head", "options", "trace"}:
                yield operation


def _document_validation(operation: dict[str, Any]) -> None:
    """Replace FastAPI's 422 (its own JSON shape) with ours: problem+json with ``errors``."""
    responses = operation.setdefault("responses", {})
    current = responses.get("422")
    if current is not None and _refers_to(current, _FASTAPI_VALIDATION):
        responses["422"] = _stringly(problem_responses(422))["422"]


def _document_body(operation: dict[str, Any], max_body_bytes: int | None) -> None:
    responses = operation.setdefault("responses", {})
    content = operation["requestBody"].get("content", {})
    if any(_is_json(media_type) for media_type in content):
        malformed = {400: "The body is not JSON, or not of the declared media type."}
        _add(responses, problem_responses(400, descriptions=malformed))
    if max_body_bytes is not None:
        limit = {413: f"The request body is larger than {max_body_bytes} bytes."}
        _add(responses, problem_responses(413, descriptions=limit))


def _add(responses: dict[str, Any], extra: Responses) -> None:
    for status, response in _stringly(extra).items():
        current = responses.get(status)
        responses[status] = response if current is None else _merge_one(current, response)


def _security_schemes(document: Mapping[str, Any], bearer: str) -> dict[str, Any]:
    used = {
        name
        for operation in _operations(document)
        for requirement in operation.get("security", [])
        for name in requirement
    }
    known = {
        BEARER: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": bearer},
        CLIENT_BASIC: {
            "type": "http",
            "scheme": "basic",
            "description": "Client credentials (RFC 6749 §2.3.1): client id and secret, each "
            "form-encoded, as HTTP Basic user and password.",
        },
    }
    return {name: scheme for name, scheme in known.items() if name in used}


def _drop_unreferenced(document: dict[str, Any], schemas: dict[str, Any], names: set[str]) -> None:
    """Drop ``names`` from the schemas unless something (else) refers to them."""
    for name in sorted(names):
        if name not in schemas:
            continue
        rest = {key: value for key, value in schemas.items() if key != name}
        if not _refers_to({"paths": document.get("paths", {}), "schemas": rest}, {name}):
            del schemas[name]


def _refers_to(node: object, names: set[str]) -> bool:
    """Whether a ``$ref`` under ``node`` names one of the component schemas ``names``."""
    if isinstance(node, Mapping):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.removeprefix(_SCHEMAS) in names:
            return True
        return any(_refers_to(value, names) for value in node.values())
    if isinstance(node, list):
        return any(_refers_to(value, names) for value in node)
    return False


# -- one response -------------------------------------------------------------------------------


def _response(
    status: int,
    media_type: str,
    schema: Mapping[str, Any],
    description: str | None,
    headers: Sequence[Header],
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description or _DESCRIPTIONS.get(status, "Error."),
        "content": {media_type: {"schema": dict(schema)}},
    }
    if headers:
        response["headers"] = {header.name: header.as_openapi() for header in headers}
    return response


def _problem_schema(status: int) -> dict[str, Any]:
    return {
        "allOf": [{"$ref": _SCHEMAS + PROBLEM}],
        "properties": {"status": {"const": status}},
    }


def _headers_for(status: int, headers: Mapping[int, Sequence[Header]] | None) -> list[Header]:
    named = list((headers or {}).get(status, ()))
    if status == 429 and all(h.name != RETRY_AFTER.name for h in named):
        named.append(RETRY_AFTER)
    return named


def _merge_one(first: Mapping[str, Any], second: Mapping[str, Any]) -> dict[str, Any]:
    """Two answers under one status: both media types, both descriptions; a header is still
    promised only if both answers promise it."""
    merged = _copy(first)
    if second.get("description") and second["description"] != merged.get("description"):
        merged["description"] = _join(merged.get("description"), second["description"])
    for media_type, body in second.get("content", {}).items():
        merged.setdefault("content", {}).setdefault(media_type, dict(body))
    ours, theirs = merged.get("headers", {}), second.get("headers", {})
    headers = {}
    for name in [*ours, *(name for name in theirs if name not in ours)]:
        header = dict(ours.get(name) or theirs[name])
        both = name in ours and name in theirs
        header["required"] = both and ours[name]["required"] and theirs[name]["required"]
        headers[name] = header
    if headers:
        merged["headers"] = headers
    return merged


def _copy(response: Mapping[str, Any]) -> dict[str, Any]:
    copied = dict(response)
    if "content" in copied:
        copied["content"] = {key: dict(value) for key, value in copied["content"].items()}
    if "headers" in copied:
        copied["headers"] = {key: dict(value) for key, value in copied["headers"].items()}
    return copied


def _stringly(responses: Responses) -> dict[str, dict[str, Any]]:
    return {str(status): response for status, response in responses.items()}


def _is_json(media_type: str) -> bool:
    kind = media_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


def _join(first: str | None, second: str) -> str:
    return f"{first}\n\n{second}" if first else second


# -- the shared schemas -------------------------------------------------------------------------


def _shared_schemas() -> dict[str, Any]:
    return {
        PROBLEM: {
            "title": "Problem",
            "description": "RFC 9457 problem details; `code` is the machine-readable error "
            "(for bearer-token errors, the RFC 6750 error), `type` is the code's URI.",
            "type": "object",
            "required": ["type", "title", "status", "detail", "code"],
            "properties": {
                "type": {"type": "string", "pattern": "^" + re.escape(TYPE_BASE) + "[a-z0-9_]+$"},
                "title": {"type": "string"},
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "detail": {"type": "string"},
                "code": {"type": "string", "pattern": "^[a-z0-9_]+$"},
                "instance": {"type": "string"},
                "reason": {
                    "type": "string",
                    "description": "Token errors: the finer reason (`expired`, `bad_signature`, "
                    "...).",
                },
                "required_scopes": {"type": "array", "items": {"type": "string"}},
                "errors": {
                    "type": "array",
                    "items": {"$ref": _SCHEMAS + "ValidationIssue"},
                    "description": "422: each invalid input, without the value sent.",
                },
            },
            "additionalProperties": True,
        },
        "ValidationIssue": {
            "title": "ValidationIssue",
            "type": "object",
            "required": ["loc", "msg", "type"],
            "properties": {
                "loc": {"type": "array", "items": {"type": "string"}},
                "msg": {"type": "string"},
                "type": {"type": "string"},
            },
        },
        OAUTH_ERROR: {
            "title": "OAuthError",
            "description": "RFC 6749 §5.2 error response.",
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {"type": "string", "pattern": _OAUTH_CODE},
                "error_description": {"type": "string", "pattern": _OAUTH_TEXT},
                "error_uri": {"type": "string"},
            },
        },
    }

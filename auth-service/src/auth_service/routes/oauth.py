"""The OAuth 2.0 endpoints: ``/token`` (RFC 6749), ``/introspect`` (RFC 7662) and ``/revoke``
(RFC 7009).

All take ``application/x-www-form-urlencoded`` bodies and answer errors as RFC 6749 §5.2 objects.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from auth_service import clients, devices, revocation
from auth_service.errors import NO_STORE, OAuthError
from auth_service.security import client_ip
from auth_service.state import Svc
from auth_service.tokens import parse_scope
from gatepass.core.errors import TokenError
from gatepass.openapi import (
    RETRY_AFTER,
    FormField,
    Header,
    client_security,
    form_request_body,
    merge_responses,
    oauth_error_responses,
    problem_responses,
)

router = APIRouter(tags=["oauth"])

FORM = "application/x-www-form-urlencoded"
MAX_FIELDS = 20


# -- what the OpenAPI document says (the routes read their forms themselves, see read_form) --------


class TokenResponse(BaseModel):
    """RFC 6749 §5.1, plus the session the tokens belong to."""

    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    refresh_token: str
    session_id: str
    scope: str


class IntrospectionResponse(BaseModel):
    """RFC 7662 §2.2: ``active``, and the token's claims when it is active."""

    active: bool
    token_type: str | None = None
    iss: str | None = None
    sub: str | None = None
    aud: str | list[str] | None = None
    exp: int | None = None
    iat: int | None = None
    jti: str | None = None
    sid: str | None = None
    client_id: str | None = None
    scope: str | None = None


_NO_STORE_HEADERS = {
    "Cache-Control": {
        "description": "RFC 6749 §5.1: never cached.",
        "required": True,
        "schema": {"type": "string", "pattern": "no-store"},
    }
}
_CLIENT_CHALLENGE = Header(
    "WWW-Authenticate", "The HTTP Basic challenge.", {"type": "string", "pattern": "^Basic "}
)
_CLIENT_CHALLENGES = {401: [_CLIENT_CHALLENGE], 429: [_CLIENT_CHALLENGE]}
_CLIENT_REFUSED = {
    401: "Client authentication failed (RFC 6749 §5.2 `invalid_client`).",
    429: "Too many failed client authentications from this address or for this client.",
}
TOKEN_FORM = {
    "grant_type": FormField(
        "Only `refresh_token` is supported.", required=True, schema={"enum": ["refresh_token"]}
    ),
    "refresh_token": FormField("The refresh token from the last login or refresh.", required=True),
    "scope": FormField("Narrow the new access token to these scopes (RFC 6749 §6)."),
    "client_id": FormField("The client the refresh token was issued to."),
    "client_secret": FormField("A confidential client's secret, when not sent with HTTP Basic."),
}
REVOKE_FORM = {
    "token": FormField("The refresh token or the access token to revoke.", required=True),
    "token_type_hint": FormField(
        "RFC 7009 §2.1: `refresh_token` or `access_token`, the kind looked up first (the other "
        "is looked up too)."
    ),
    "client_id": FormField("The client the token was issued to."),
    "client_secret": FormField("A confidential client's secret, when not sent with HTTP Basic."),
}
INTROSPECT_FORM = {
    "token": FormField("The access token to introspect.", required=True),
    "token_type_hint": FormField("RFC 7662 §2.1; `access_token` is the only kind looked up."),
}


async def read_form(request: Request) -> dict[str, str]:
    """Parse a form body strictly: right media type, UTF-8, each parameter at most once.

    Error descriptions are fixed text: nothing the client sent is echoed (RFC 6749 §5.2 allows
    only part of ASCII there, and an echo would be the client's to craft)."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != FORM:
        raise OAuthError("invalid_request", "The body must be application/x-www-form-urlencoded.")
    try:
        pairs = parse_qsl(
            (await request.body()).decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise OAuthError("invalid_request", "The form body could not be parsed.") from exc
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise OAuthError("invalid_request", "A parameter is repeated.")
        form[name] = value
    return form


def _required(form: dict[str, str], name: str) -> str:
    """A parameter that must be present and non-empty; ``name`` is ours, never the client's."""
    value = form.get(name, "")
    if not value:
        raise OAuthError("invalid_request", f"The parameter {name} is missing.")
    return value


def _requested_scope(form: dict[str, str]) -> frozenset[str] | None:
    """The refresh grant's optional ``scope`` (RFC 6749 §6): None when absent."""
    if "scope" not in form:
        return None
    scope = parse_scope(form["scope"])
    if scope is None:
        raise OAuthError("invalid_scope", "The scope parameter is malformed.")
    return scope


@router.post(
    "/token",
    response_model=TokenResponse,
    responses=merge_responses(
        {200: {"headers": _NO_STORE_HEADERS}},
        oauth_error_responses(
            400,
            401,
            429,
            descriptions={
                400: "`invalid_request`, `invalid_grant`, `unsupported_grant_type` or "
                "`invalid_scope` (RFC 6749 §5.2).",
                **_CLIENT_REFUSED,
            },
            headers=_CLIENT_CHALLENGES,
        ),
        problem_responses(
            503,
            descriptions={503: "A revocation of this user is not in effect yet (clock skew)."},
            headers={503: [RETRY_AFTER]},
        ),
    ),
    openapi_extra={**form_request_body(TOKEN_FORM), "security": client_security(optional=True)},
)
async def token(request: Request, svc: Svc) -> JSONResponse:
    form = await read_form(request)
    client_id = await clients.token_client(svc, request, form, client_ip(request))
    grant_type = _required(form, "grant_type")
    if grant_type != "refresh_token":
        raise OAuthError("unsupported_grant_type", "The grant type is not supported.")
    refresh_token = _required(form, "refresh_token")
    if len(refresh_token) > 512:
        raise OAuthError("invalid_grant", "The refresh token is not valid.")
    scope = _requested_scope(form)
    pair = await devices.refresh(
        svc,
        refresh_token,
        client_id=client_id,
        ip=client_ip(request),
        scope=scope,
    )
    body = {
        "access_token": pair.access_token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
        "refresh_token": pair.refresh_token,
        "session_id": pair.session_id,
        "scope": pair.scope,
    }
    return JSONResponse(body, headers=NO_STORE)


INTROSPECTED = ("iss", "sub", "aud", "exp", "iat", "jti", "sid", "client_id", "scope")


@router.post(
    "/introspect",
    response_model=IntrospectionResponse,
    responses=oauth_error_responses(
        400,
        401,
        429,
        descriptions={400: "`invalid_request`: no token, or a malformed form.", **_CLIENT_REFUSED},
        headers=_CLIENT_CHALLENGES,
    ),
    openapi_extra={**form_request_body(INTROSPECT_FORM), "security": client_security()},
)
async def introspect(request: Request, svc: Svc) -> JSONResponse:
    await clients.introspection_client(svc, request, client_ip(request))
    form = await read_form(request)
    token = _required(form, "token")
    try:
        principal = await svc.verifier.verify(token)
    except TokenError:
        return JSONResponse({"active": False}, headers=NO_STORE)
    claims = dict(principal.claims)
    now = svc.clock()
    async with svc.sessions() as db:
        if await revocation.is_revoked(db, claims, now):
            return JSONResponse({"active": False}, headers=NO_STORE)
    body: dict[str, Any] = {"active": True, "token_type": "Bearer"}
    body.update({name: claims[name] for name in INTROSPECTED if name in claims})
    return JSONResponse(body, headers=NO_STORE)


@router.post(
    "/revoke",
    response_class=Response,
    responses=merge_responses(
        {
            200: {
                "description": "Revoked, or nothing to revoke: an unknown, invalid or expired "
                "token gets the same answer (RFC 7009 §2.2). The body is empty.",
                "content": {},
                "headers": _NO_STORE_HEADERS,
            }
        },
        oauth_error_responses(
            400,
            401,
            429,
            descriptions={
                400: "`invalid_request`: no token, or a malformed form; `unauthorized_client`: "
                "the token was issued to another client.",
                **_CLIENT_REFUSED,
            },
            headers=_CLIENT_CHALLENGES,
        ),
    ),
    openapi_extra={**form_request_body(REVOKE_FORM), "security": client_security(optional=True)},
)
async def revoke(request: Request, svc: Svc) -> Response:
    """RFC 7009: a refresh token signs its session out (with the access tokens issued in it), an
    access token is revoked alone. Clients authenticate as at the token endpoint."""
    form = await read_form(request)
    client_id = await clients.token_client(svc, request, form, client_ip(request))
    token = _required(form, "token")
    await devices.revoke_token(svc, token, form.get("token_type_hint"), client_id=client_id)
    return Response(status_code=200, headers=NO_STORE)

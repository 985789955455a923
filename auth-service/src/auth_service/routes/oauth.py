"""The OAuth 2.0 endpoints: ``/token`` (RFC 6749), ``/introspect`` (RFC 7662) and ``/revoke``
(RFC 7009).

All take ``application/x-www-form-urlencoded`` bodies and answer errors as RFC 6749 §5.2 objects.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from auth_service import authorization, clients, devices, grants, revocation
from auth_service.errors import NO_STORE, OAuthError
from auth_service.security import client_ip
from auth_service.state import Services, Svc
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
from gatepass.text import printable

router = APIRouter(tags=["oauth"])

FORM = "application/x-www-form-urlencoded"
MAX_FIELDS = 20
USER_AGENT_MAX = 512  # sessions.user_agent
# The parameters that may repeat: RFC 8707 §2 ``resource``, RFC 8693 §2.1 ``audience``.
REPEATABLE = frozenset({"resource", "audience"})


# -- what the OpenAPI document says (the routes read their forms themselves, see read_form) --------


class TokenResponse(BaseModel):
    """RFC 6749 §5.1, plus the session the tokens belong to (the refresh grant's answer); a
    service grant's answer has no refresh token and no session, a token exchange's says what it
    issued (RFC 8693 §2.2.1)."""

    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    scope: str
    refresh_token: str | None = None
    session_id: str | None = None
    id_token: str | None = Field(
        None, description="OpenID Connect: the ID token of an `openid` authorization code."
    )
    issued_token_type: Literal["urn:ietf:params:oauth:token-type:access_token"] | None = None


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
    act: dict[str, Any] | None = Field(
        None, description="RFC 8693 §4.1: the service acting for `sub` (an exchanged token)."
    )


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
_REPEATED = {"type": "array", "items": {"type": "string"}}
TOKEN_FORM = {
    "grant_type": FormField(
        "`authorization_code` (RFC 6749 §4.1.3, registered apps, PKCE); `refresh_token` "
        "(RFC 6749 §6); `client_credentials` (§4.4, registered services only); "
        f"`{grants.TOKEN_EXCHANGE}` (RFC 8693, registered services only).",
        required=True,
        schema={
            "enum": [
                authorization.AUTHORIZATION_CODE,
                "refresh_token",
                grants.CLIENT_CREDENTIALS,
                grants.TOKEN_EXCHANGE,
            ]
        },
    ),
    "code": FormField("`authorization_code` grant: the code the redirect URI received."),
    "redirect_uri": FormField(
        "`authorization_code` grant: the redirect_uri of the authorization request, exactly."
    ),
    "code_verifier": FormField(
        "`authorization_code` grant: the PKCE verifier (RFC 7636 §4.5) whose S256 challenge "
        "the authorization request sent."
    ),
    "refresh_token": FormField(
        "`refresh_token` grant: the refresh token from the last login or refresh."
    ),
    "scope": FormField(
        "Narrow the access token to these scopes: within the session's grant (refresh), the "
        "client's allowed scopes (client credentials), or the subject token's scopes and the "
        "client's (token exchange). Default: all of them."
    ),
    "resource": FormField(
        "RFC 8707: an audience the access token is for (may repeat): within the session's "
        "audiences (refresh) or the client's allowed audiences. Default: all of them.",
        schema=_REPEATED,
    ),
    "audience": FormField(
        "RFC 8693: an audience the access token is for (may repeat), as `resource`.",
        schema=_REPEATED,
    ),
    "subject_token": FormField(
        "Token exchange: the user's access token the client was called with (its audience must "
        "be the client's own)."
    ),
    "subject_token_type": FormField(
        f"Token exchange: `{grants.ACCESS_TOKEN_TYPE}`.",
        schema={"enum": [grants.ACCESS_TOKEN_TYPE]},
    ),
    "requested_token_type": FormField(
        f"Token exchange: `{grants.ACCESS_TOKEN_TYPE}` (the default and the only one).",
        schema={"enum": [grants.ACCESS_TOKEN_TYPE]},
    ),
    "client_id": FormField("The client: the one the refresh token was issued to."),
    "client_secret": FormField("A confidential client's secret, when not sent with HTTP Basic."),
    "client_assertion_type": FormField(
        "RFC 7523 `private_key_jwt`: `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`."
    ),
    "client_assertion": FormField(
        "RFC 7523 `private_key_jwt`: a JWT the client signed with one of its registered keys."
    ),
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


class Form(Mapping[str, str]):
    """A parsed form body: each parameter once, by name; a parameter that may repeat
    (:data:`REPEATABLE`) is read with :meth:`many` alone (it is no key of the mapping)."""

    def __init__(self, single: dict[str, str], repeated: dict[str, list[str]]) -> None:
        self._single = single
        self._repeated = repeated

    def __getitem__(self, name: str) -> str:
        return self._single[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._single)

    def __len__(self) -> int:
        return len(self._single)

    def many(self, name: str) -> list[str]:
        """Every value of a repeatable parameter, in order; empty when it was not sent."""
        return list(self._repeated.get(name, ()))


async def read_form(request: Request) -> Form:
    """Parse a form body strictly: right media type, UTF-8, each parameter at most once but
    ``resource`` and ``audience``.

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
    single: dict[str, str] = {}
    repeated: dict[str, list[str]] = {}
    for name, value in pairs:
        if name in REPEATABLE:
            repeated.setdefault(name, []).append(value)
            continue
        if name in single:
            raise OAuthError("invalid_request", "A parameter is repeated.")
        single[name] = value
    return Form(single, repeated)


def _required(form: Mapping[str, str], name: str) -> str:
    """A parameter that must be present and non-empty; ``name`` is ours, never the client's."""
    value = form.get(name, "")
    if not value:
        raise OAuthError("invalid_request", f"The parameter {name} is missing.")
    return value


def _requested_scope(form: Mapping[str, str]) -> frozenset[str] | None:
    """The optional ``scope`` (RFC 6749 §3.3): None when absent."""
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
                400: "`invalid_request`, `invalid_grant`, `unsupported_grant_type`, "
                "`invalid_scope` (RFC 6749 §5.2), `unauthorized_client` (a grant for registered "
                "services only) or `invalid_target` (an audience unknown or not allowed, "
                "RFC 8707 §2).",
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
    caller = await clients.token_caller(svc, request, form, client_ip(request))
    grant_type = _required(form, "grant_type")
    if grant_type == authorization.AUTHORIZATION_CODE:
        body = await _authorization_code_grant(svc, request, form, caller)
    elif grant_type == "refresh_token":
        body = await _refresh_grant(svc, form, caller, client_ip(request))
    elif grant_type == grants.CLIENT_CREDENTIALS:
        body = await _client_credentials_grant(svc, form, caller)
    elif grant_type == grants.TOKEN_EXCHANGE:
        body = await _token_exchange_grant(svc, form, caller)
    else:
        raise OAuthError("unsupported_grant_type", "The grant type is not supported.")
    return JSONResponse(body, headers=NO_STORE)


async def _refresh_grant(
    svc: Services, form: Form, caller: clients.TokenCaller, ip: str
) -> dict[str, Any]:
    refresh_token = _required(form, "refresh_token")
    if len(refresh_token) > 512:
        raise OAuthError("invalid_grant", "The refresh token is not valid.")
    pair = await devices.refresh(
        svc,
        refresh_token,
        client_id=caller.client_id,
        ip=ip,
        scope=_requested_scope(form),
        resource=form.many("resource"),
    )
    return {
        "access_token": pair.access_token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
        "refresh_token": pair.refresh_token,
        "session_id": pair.session_id,
        "scope": pair.scope,
    }


async def _authorization_code_grant(
    svc: Services, request: Request, form: Form, caller: clients.TokenCaller
) -> dict[str, Any]:
    client = authorization.app_caller(caller)
    return await authorization.redeem(
        svc,
        client,
        code=_required(form, "code"),
        redirect_uri=form.get("redirect_uri"),
        code_verifier=form.get("code_verifier"),
        ip=client_ip(request),
        user_agent=printable(request.headers.get("user-agent"), USER_AGENT_MAX),
    )


async def _client_credentials_grant(
    svc: Services, form: Form, caller: clients.TokenCaller
) -> dict[str, Any]:
    client = grants.service_client(caller)
    issued = await grants.client_credentials(
        svc, client, scope=_requested_scope(form), audiences=_targets(form)
    )
    return _service_answer(issued)


async def _token_exchange_grant(
    svc: Services, form: Form, caller: clients.TokenCaller
) -> dict[str, Any]:
    client = grants.service_client(caller)
    subject_token = _required(form, "subject_token")
    if _required(form, "subject_token_type") != grants.ACCESS_TOKEN_TYPE:
        raise OAuthError("invalid_request", "Only access tokens can be exchanged.")
    if form.get("requested_token_type", grants.ACCESS_TOKEN_TYPE) != grants.ACCESS_TOKEN_TYPE:
        raise OAuthError("invalid_request", "Only access tokens can be issued.")
    if "actor_token" in form or "actor_token_type" in form:
        raise OAuthError("invalid_request", "Actor tokens are not supported.")
    targets = _targets(form)
    if not targets:
        raise OAuthError("invalid_request", "The parameter audience or resource is missing.")
    issued = await grants.exchange(
        svc, client, subject_token, audiences=targets, scope=_requested_scope(form)
    )
    return {**_service_answer(issued), "issued_token_type": grants.ACCESS_TOKEN_TYPE}


def _targets(form: Form) -> list[str]:
    """The audiences asked for, by ``resource`` (RFC 8707) and ``audience`` (RFC 8693) alike."""
    return [*form.many("resource"), *form.many("audience")]


def _service_answer(issued: grants.IssuedToken) -> dict[str, Any]:
    return {
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": issued.scope,
    }


INTROSPECTED = ("iss", "sub", "aud", "exp", "iat", "jti", "sid", "client_id", "scope", "act")


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
        principal = await grants.verify_issued(svc, token)
    except TokenError:
        return JSONResponse({"active": False}, headers=NO_STORE)
    claims = dict(principal.claims)
    now = svc.clock()
    async with svc.sessions() as db:
        if grants.is_service_token(principal):
            revoked = await grants.service_token_revoked(db, principal, now)
        else:
            revoked = await revocation.is_revoked(db, claims, now)
    if revoked:
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

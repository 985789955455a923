"""Signup, login, the caller's own profile and password."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from auth_service import accounts, clients, devices, grants, registry
from auth_service.errors import NO_STORE, ClientAuthenticationError, OAuthError
from auth_service.security import CALLER_ANSWERS, CurrentCaller, client_ip
from auth_service.state import Services, Svc
from gatepass.openapi import (
    RETRY_AFTER,
    bearer_security,
    json_body_examples,
    merge_responses,
    problem_responses,
)
from gatepass.problems import ProblemError
from gatepass.text import OneLine, printable

router = APIRouter(tags=["accounts"])

_BUSY = "Load shed: too many passwords are waiting to be hashed; wait `Retry-After` seconds."

# Each bounded to its column (users.email 320, users.display_name 100), control characters refused.
Email = Annotated[str, Field(min_length=3, max_length=320), OneLine]
DisplayName = Annotated[str, Field(max_length=100), OneLine]
# Bounded well above the policy maximum so an over-long password gets the policy's 422. Never
# stored or queried as text (only its hash), so the password policy alone judges its characters.
Password = Annotated[str, Field(min_length=1, max_length=1024)]
USER_AGENT_MAX = 512  # sessions.user_agent
# An audience identifier (RFC 8707 ``resource``): a configured name or URI; a login names a few.
Audience = Annotated[str, Field(min_length=1, max_length=200), OneLine]
MAX_RESOURCES = 20


class SignupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email
    password: Password
    display_name: DisplayName | None = None


class SignupOut(BaseModel):
    id: str
    email: str


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email
    password: Password
    client_id: Annotated[str | None, Field(max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")] = None
    # RFC 8707: the audiences the session's access tokens name (default: all the client may).
    resource: (
        Audience | Annotated[list[Audience], Field(min_length=1, max_length=MAX_RESOURCES)] | None
    ) = None


class LoginOut(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the RFC 6749 token type, not a secret
    expires_in: int
    refresh_token: str
    session_id: str
    scope: str


class InvalidTargetError(ProblemError):
    """A login asking for an audience that is not configured or not the client's to ask for
    (RFC 8707 §2 ``invalid_target``, as a problem like the login's other answers)."""

    status = 400
    code = "invalid_target"
    title = "Invalid audience"


class UnauthorizedClientError(ProblemError):
    """A login naming an app, which signs users in through ``/authorize`` (RFC 6749 §5.2
    ``unauthorized_client``, as a problem like the login's other answers)."""

    status = 400
    code = "unauthorized_client"
    title = "Client not allowed to log users in"


class PasswordChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: Password
    new_password: Password


class Profile(BaseModel):
    id: str
    email: str
    display_name: str | None
    roles: list[str]
    created_at: datetime
    session_id: str | None


@router.post(
    "/signup",
    status_code=status.HTTP_201_CREATED,
    response_model=SignupOut,
    responses=problem_responses(
        409,
        422,
        429,
        503,
        descriptions={
            409: "An account with this email exists.",
            422: "Not valid: the email, or the password (the detail says why it is refused).",
            429: "Too many signups from this address; wait `Retry-After` seconds.",
            503: _BUSY,
        },
        headers={503: [RETRY_AFTER]},
    ),
    openapi_extra=json_body_examples(
        alice={
            "email": "alice@example.com",
            "password": "correct horse battery staple 42",
            "display_name": "Alice",
        }
    ),
)
async def signup(body: SignupIn, request: Request, svc: Svc) -> SignupOut:
    user = await accounts.signup(
        svc, body.email, body.password, body.display_name, ip=client_ip(request)
    )
    return SignupOut(id=user.id, email=user.email)


@router.post(
    "/login",
    response_model=LoginOut,
    responses=problem_responses(
        400,
        401,
        403,
        429,
        503,
        descriptions={
            400: "`unauthorized_client`: the body names an app (apps sign users in through "
            "`/authorize`); `invalid_target`: a `resource` that is not a configured audience, or "
            "one the client may not ask for (RFC 8707 §2).",
            401: "Unknown email or wrong password (one answer for both); or `invalid_client`: "
            "the body names a confidential client that did not authenticate with HTTP Basic.",
            403: "The account is disabled.",
            429: "Too many failed logins for this account or address; wait `Retry-After` s.",
            503: _BUSY + " Or a revocation of this user is not in effect yet (clock skew).",
        },
        headers={503: [RETRY_AFTER]},
    ),
    openapi_extra=json_body_examples(
        alice={"email": "alice@example.com", "password": "correct horse battery staple 42"}
    ),
)
async def login(body: LoginIn, request: Request, svc: Svc) -> JSONResponse:
    ip = client_ip(request)
    try:
        client_id = await clients.login_client(svc, request, body.client_id, ip)
    except OAuthError as exc:
        if exc.error == "unauthorized_client":
            raise UnauthorizedClientError(exc.description) from exc
        raise ClientAuthenticationError(exc.status, exc.description, exc.headers) from exc
    audiences = await _login_audiences(svc, client_id, body.resource)
    user = await accounts.authenticate(svc, body.email, body.password, ip)
    pair = await devices.open_session(
        svc,
        user,
        client_id=client_id,
        user_agent=printable(request.headers.get("user-agent"), USER_AGENT_MAX),
        ip=ip,
        audiences=audiences,
    )
    out = LoginOut(
        access_token=pair.access_token,
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
        session_id=pair.session_id,
        scope=pair.scope,
    )
    return JSONResponse(out.model_dump(), headers=NO_STORE)


async def _login_audiences(
    svc: Services, client_id: str, resource: str | list[str] | None
) -> list[str]:
    """The session's audiences: those asked for, or all the client may ask for (a registered
    client's own, else the settings' ``app_audiences``); checked before the password is."""
    async with svc.sessions() as db:
        client = await registry.find(db, client_id)
    requested = [resource] if isinstance(resource, str) else resource or []
    try:
        return grants.audiences_for(
            svc.settings, requested, grants.app_audiences(svc.settings, client)
        )
    except OAuthError as exc:
        raise InvalidTargetError(exc.description) from exc


@router.get(
    "/me", response_model=Profile, responses=CALLER_ANSWERS, openapi_extra=bearer_security()
)
async def me(caller: CurrentCaller, svc: Svc) -> Profile:
    user = await accounts.get_user(svc.sessions, caller.user_id)
    return Profile(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        roles=user.roles,
        created_at=user.created_at,
        session_id=caller.session_id,
    )


@router.post(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=merge_responses(
        CALLER_ANSWERS,
        problem_responses(
            403,
            422,
            429,
            503,
            descriptions={
                403: "`wrong_password`: the current password is wrong; or `account_disabled`.",
                422: "The new password is refused (the detail and `reason` say why).",
                429: "Too many wrong passwords for this account or address (the login "
                "throttle); wait `Retry-After` seconds.",
                503: _BUSY,
            },
            headers={503: [RETRY_AFTER]},
        ),
    ),
    openapi_extra={
        **bearer_security(),
        **json_body_examples(
            alice={
                "current_password": "correct horse battery staple 42",
                "new_password": "a longer passphrase for the new year",
            }
        ),
    },
)
async def change_password(
    body: PasswordChangeIn, caller: CurrentCaller, request: Request, svc: Svc
) -> Response:
    """Change the caller's password. Every other session is signed out and every access token
    issued before now is revoked, this one too: the calling session stays signed in and gets a
    new access token with its refresh token."""
    await accounts.change_password(
        svc,
        caller.user_id,
        body.current_password,
        body.new_password,
        keep_session=caller.session_id,
        ip=client_ip(request),
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)

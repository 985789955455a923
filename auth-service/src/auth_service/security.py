"""Who is calling the auth service's own protected routes (``/me``, ``/sessions``, ``/admin``).

The issuer verifies its own tokens with its own keys, and since it holds the state, it also checks
that the session is live and the user enabled: a signed-out token stops working here at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from auth_service import revocation
from auth_service.errors import BearerTokenError, InsufficientScopeError
from auth_service.state import Services, get_services
from auth_service.tokens import InvalidAccessToken, verify_access_token
from gatepass.openapi import CHALLENGE, merge_responses, problem_responses


@dataclass(frozen=True)
class Caller:
    user_id: str
    session_id: str | None
    scopes: frozenset[str]
    claims: dict[str, Any]


def bearer_token(request: Request) -> str:
    """Exactly one ``Authorization: Bearer`` header (RFC 6750 §2.1)."""
    values = request.headers.getlist("authorization")
    if not values:
        raise BearerTokenError(missing=True)
    if len(values) > 1:
        raise BearerTokenError("Send exactly one Authorization header.")
    scheme, _, token = values[0].partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise BearerTokenError("The Authorization header must be 'Bearer <token>'.")
    return token


async def current_caller(
    request: Request, svc: Annotated[Services, Depends(get_services)]
) -> Caller:
    token = bearer_token(request)
    now = svc.clock()
    try:
        claims = await verify_access_token(
            svc.keys, svc.settings, token, now, audience=svc.settings.self_audience
        )
    except InvalidAccessToken as exc:
        raise BearerTokenError(f"The access token is not valid: {exc}.") from exc
    async with svc.sessions() as db:
        if await revocation.is_revoked(db, claims, now):
            raise BearerTokenError("The access token has been revoked.")
    sid = claims.get("sid")
    return Caller(
        user_id=str(claims["sub"]),
        session_id=sid if isinstance(sid, str) else None,
        scopes=frozenset(str(claims.get("scope", "")).split()),
        claims=claims,
    )


CurrentCaller = Annotated[Caller, Depends(current_caller)]


def require_scope(scope: str) -> Callable[[Caller], Awaitable[Caller]]:
    async def dependency(caller: CurrentCaller) -> Caller:
        if scope not in caller.scopes:
            raise InsufficientScopeError(scope)
        return caller

    return dependency


AdminCaller = Annotated[Caller, Depends(require_scope("admin"))]

# What these dependencies answer, for the OpenAPI document of the routes that use them.
CALLER_ANSWERS = problem_responses(
    401,
    descriptions={401: "No access token, or one that is not valid (the challenge says why)."},
    headers={401: [CHALLENGE]},
)
ADMIN_ANSWERS = merge_responses(
    CALLER_ANSWERS,
    problem_responses(
        403,
        descriptions={403: "The access token lacks the admin scope."},
        headers={403: [CHALLENGE]},
    ),
)


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"

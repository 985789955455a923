"""Who is calling the auth service's own protected routes (``/me``, ``/sessions``, ``/admin``).

The issuer reads the token as an edge does (:class:`gatepass.core.bearer.BearerHeader`), verifies
it with the edges' verifier over its own published keys (:mod:`auth_service.verification`) and
answers refusals in their words (:mod:`gatepass.challenges`). Since it holds the state, it then
also checks that the session is live and the user enabled: a signed-out token stops working here
at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from auth_service import revocation
from auth_service.state import Services, get_services
from gatepass import challenges
from gatepass.core.bearer import BearerHeader
from gatepass.core.errors import GatepassError, RevokedTokenError, TokenError
from gatepass.core.verifier import Verifier
from gatepass.openapi import CHALLENGE, merge_responses, problem_responses

REALM = "gatepass"
_BEARER = BearerHeader()


@dataclass(frozen=True)
class Caller:
    user_id: str
    session_id: str | None
    scopes: frozenset[str]
    claims: dict[str, Any]


class NotBearerError(TokenError):
    """An ``Authorization`` header of another scheme: 401 ``invalid_token`` here, where an edge
    answers a bare challenge (no token). This service's clients also hold HTTP Basic client
    credentials (``/token``, ``/introspect``), and one sent to a bearer route is a mistake worth
    naming."""

    description = "The Authorization header must be 'Bearer <token>'."


def bearer_token(request: Request) -> str | None:
    """The one ``Authorization: Bearer`` token (RFC 6750 §2.1), checked for RFC 6750 characters;
    ``None`` without one. Raises the ``GatepassError`` to answer otherwise: two headers or a
    malformed token are ``invalid_request`` (400), as at an edge."""
    presented = _BEARER.extract(request.scope)
    if presented is not None:
        return presented.token
    if "authorization" in request.headers:
        raise NotBearerError
    return None


async def current_caller(
    request: Request, svc: Annotated[Services, Depends(get_services)]
) -> Caller:
    """The user of a token for the account routes (the ``self_audience``)."""
    return await _caller(request, svc, svc.verifier)


async def userinfo_caller(
    request: Request, svc: Annotated[Services, Depends(get_services)]
) -> Caller:
    """The user of a token for ``/userinfo`` (``Settings.userinfo_audience``), which apps'
    tokens name instead of the account routes' audience."""
    return await _caller(request, svc, svc.userinfo_verifier)


async def _caller(request: Request, svc: Services, verifier: Verifier) -> Caller:
    try:
        token = bearer_token(request)
        principal = None if token is None else await verifier.verify(token)
    except GatepassError as exc:
        raise challenges.problem(exc, REALM) from None
    if principal is None:
        raise challenges.no_token(REALM)
    if principal.is_service or principal.act is not None:
        # Users' own routes: a service's token, or one acting for a user, is never the user.
        raise challenges.caller_not_allowed("user", REALM)
    claims = dict(principal.claims)
    async with svc.sessions() as db:
        if await revocation.is_revoked(db, claims, svc.clock()):
            raise challenges.problem(RevokedTokenError(), REALM)
    return Caller(principal.sub, principal.sid, principal.scopes, claims)


CurrentCaller = Annotated[Caller, Depends(current_caller)]
UserinfoCaller = Annotated[Caller, Depends(userinfo_caller)]


def require_scope(scope: str) -> Callable[[Caller], Awaitable[Caller]]:
    async def dependency(caller: CurrentCaller) -> Caller:
        if scope not in caller.scopes:
            raise challenges.insufficient_scope((scope,), REALM)
        return caller

    return dependency


AdminCaller = Annotated[Caller, Depends(require_scope("admin"))]

# What these dependencies answer, for the OpenAPI document of the routes that use them.
CALLER_ANSWERS = problem_responses(
    400,
    401,
    descriptions={
        400: "More than one access token, or one that is not a bearer token.",
        401: "No access token, or one that is not valid (the challenge says why).",
    },
    headers={400: [CHALLENGE], 401: [CHALLENGE]},
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

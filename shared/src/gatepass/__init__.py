"""gatepass: the library every gatepass service imports.

What every service shares: RFC 9457 problem details (:mod:`gatepass.problems`), structured logs
with a request id (:mod:`gatepass.logs`) and a body-size limit (:mod:`gatepass.limits`).

And what every edge uses to verify access tokens locally, without calling the auth service: the
framework-free token contract of :mod:`gatepass.core`, re-exported here, and its FastAPI layer,
imported only when first used:

- :mod:`gatepass.core`: the JWKS key set, the verifier, the verified-token cache, the revocation
  deny-set and the feed follower that keeps it current, the error tree; and the service's own
  tokens (client credentials, token exchange) from the issuer's token endpoint;
- :mod:`gatepass.fastapi`: the ``Principal`` dependency, ``require_scopes``, ``require_user``,
  ``require_service``, RFC 6750 answers;
- :mod:`gatepass.calls`: ``Calls``, calling other services as this service or for the user;
- :mod:`gatepass.routing`: ``GatepassRoute``, which checks the token as soon as the route matched,
  before the body is read or any other dependency runs;
- :mod:`gatepass.settings`: ``EdgeAuthSettings``, read with each edge's own prefix;
"""

import importlib
from typing import TYPE_CHECKING, Any

from gatepass.core import (
    AccessDeniedError,
    AccessPrincipal,
    AuthStats,
    BadSignatureError,
    BearerHeader,
    BearerHeaderOrCookie,
    CallerNotAllowedError,
    Check,
    ClaimError,
    ClientIdentity,
    CsrfError,
    DenySet,
    DisallowedAlgorithmError,
    Exchanger,
    ExpiredTokenError,
    FeedConfig,
    FeedState,
    ForbiddenHeaderError,
    GatepassError,
    InsufficientScopeError,
    IssuedToken,
    KeyAlgorithmMismatchError,
    KeySetConfig,
    KeySetState,
    KeySource,
    KeysUnavailableError,
    MalformedTokenError,
    MissingClaimError,
    NotYetValidError,
    NoUsableKeysError,
    ParsedJwks,
    PresentedToken,
    RemoteKeySet,
    RequestError,
    Revocation,
    RevocationFeed,
    RevocationsUnavailableError,
    RevokedTokenError,
    ServiceTokens,
    StaticKeySet,
    TokenAuth,
    TokenCache,
    TokenEndpoint,
    TokenEndpointError,
    TokenEndpointUnavailableError,
    TokenError,
    TokenRequestError,
    TokenSource,
    TokenTooLargeError,
    UnknownKidError,
    VerificationKey,
    Verifier,
    WrongAudienceError,
    WrongIssuerError,
    WrongTypeError,
    parse_jwks,
)

# The FastAPI layer, imported on first use (PEP 562) so that ``import gatepass`` stays as light as
# ``import gatepass.core``: a command-line tool or a worker that only verifies never loads FastAPI.
_LAZY = {
    "BodySizeLimitMiddleware": "gatepass.limits",
    "Calls": "gatepass.calls",
    "EdgeAuth": "gatepass.fastapi",
    "EdgeAuthSettings": "gatepass.settings",
    "GatepassRoute": "gatepass.routing",
    "ExchangeRefusedError": "gatepass.calls",
    "PeerUnavailableError": "gatepass.calls",
    "Principal": "gatepass.fastapi",
    "ProblemError": "gatepass.problems",
    "RequestContextMiddleware": "gatepass.logs",
    "ServiceCalls": "gatepass.calls",
    "configure_logging": "gatepass.logs",
    "current_principal": "gatepass.fastapi",
    "edge_auth": "gatepass.fastapi",
    "edge_auth_settings": "gatepass.settings",
    "install_problem_handlers": "gatepass.problems",
    "presented_token": "gatepass.fastapi",
    "problem_response": "gatepass.problems",
    "register_metrics": "gatepass.stats",
    "request_id_var": "gatepass.logs",
    "require_scopes": "gatepass.fastapi",
    "require_service": "gatepass.fastapi",
    "require_user": "gatepass.fastapi",
}

if TYPE_CHECKING:
    from gatepass.calls import Calls, ExchangeRefusedError, PeerUnavailableError, ServiceCalls
    from gatepass.fastapi import (
        EdgeAuth,
        Principal,
        current_principal,
        edge_auth,
        presented_token,
        require_scopes,
        require_service,
        require_user,
    )
    from gatepass.limits import BodySizeLimitMiddleware
    from gatepass.logs import RequestContextMiddleware, configure_logging, request_id_var
    from gatepass.problems import ProblemError, install_problem_handlers, problem_response
    from gatepass.routing import GatepassRoute
    from gatepass.settings import EdgeAuthSettings, edge_auth_settings
    from gatepass.stats import register_metrics


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gatepass' has no attribute {name!r}")

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AccessDeniedError",
    "AccessPrincipal",
    "AuthStats",
    "BadSignatureError",
    "BearerHeader",
    "BearerHeaderOrCookie",
    "BodySizeLimitMiddleware",
    "CallerNotAllowedError",
    "Calls",
    "Check",
    "ClaimError",
    "ClientIdentity",
    "CsrfError",
    "DenySet",
    "DisallowedAlgorithmError",
    "EdgeAuth",
    "EdgeAuthSettings",
    "ExchangeRefusedError",
    "Exchanger",
    "ExpiredTokenError",
    "FeedConfig",
    "FeedState",
    "ForbiddenHeaderError",
    "GatepassError",
    "GatepassRoute",
    "InsufficientScopeError",
    "IssuedToken",
    "KeyAlgorithmMismatchError",
    "KeySetConfig",
    "KeySetState",
    "KeySource",
    "KeysUnavailableError",
    "MalformedTokenError",
    "MissingClaimError",
    "NoUsableKeysError",
    "NotYetValidError",
    "ParsedJwks",
    "PeerUnavailableError",
    "PresentedToken",
    "Principal",
    "ProblemError",
    "RemoteKeySet",
    "RequestContextMiddleware",
    "RequestError",
    "Revocation",
    "RevocationFeed",
    "RevocationsUnavailableError",
    "RevokedTokenError",
    "ServiceCalls",
    "ServiceTokens",
    "StaticKeySet",
    "TokenAuth",
    "TokenCache",
    "TokenEndpoint",
    "TokenEndpointError",
    "TokenEndpointUnavailableError",
    "TokenError",
    "TokenRequestError",
    "TokenSource",
    "TokenTooLargeError",
    "UnknownKidError",
    "VerificationKey",
    "Verifier",
    "WrongAudienceError",
    "WrongIssuerError",
    "WrongTypeError",
    "configure_logging",
    "current_principal",
    "edge_auth",
    "edge_auth_settings",
    "install_problem_handlers",
    "parse_jwks",
    "presented_token",
    "problem_response",
    "register_metrics",
    "request_id_var",
    "require_scopes",
    "require_service",
    "require_user",
]

"""gatepass: the library every gatepass service imports.

What every service shares: RFC 9457 problem details (:mod:`gatepass.problems`), structured logs
with a request id (:mod:`gatepass.logs`) and a body-size limit (:mod:`gatepass.limits`).

And what every edge uses to verify access tokens locally, without calling the auth service:

- :mod:`gatepass.keyset`: the issuer's JWKS, followed in the background (:class:`RemoteKeySet`);
- :mod:`gatepass.verifier`: strict verification into an :class:`AccessPrincipal`;
- :mod:`gatepass.tokencache`: already-verified tokens, so a hot token skips the signature math;
- :mod:`gatepass.fastapi`: the ``Principal`` dependency, ``require_scopes``, RFC 6750 answers;
- :mod:`gatepass.routing`: ``GatepassRoute``, which checks those at the door, before FastAPI's
  dependency resolution (faster, and before the body is read);
- :mod:`gatepass.settings`: ``EdgeAuthSettings``, read with each edge's own prefix;
- :mod:`gatepass.errors`: the error tree (401 branch, 503 branch), each error with a code.
"""

from gatepass.bearer import BearerHeader, BearerHeaderOrCookie, PresentedToken, TokenSource
from gatepass.errors import (
    AccessDeniedError,
    BadSignatureError,
    ClaimError,
    CsrfError,
    DisallowedAlgorithmError,
    ExpiredTokenError,
    ForbiddenHeaderError,
    GatepassError,
    InsufficientScopeError,
    KeyAlgorithmMismatchError,
    KeysUnavailableError,
    MalformedTokenError,
    MissingClaimError,
    NotYetValidError,
    NoUsableKeysError,
    RequestError,
    RevokedTokenError,
    TokenError,
    TokenTooLargeError,
    UnknownKidError,
    WrongAudienceError,
    WrongIssuerError,
    WrongTypeError,
)
from gatepass.fastapi import EdgeAuth, Principal, current_principal, edge_auth, require_scopes
from gatepass.jwks import ParsedJwks, VerificationKey, parse_jwks
from gatepass.keyset import KeySetConfig, KeySource, RemoteKeySet, StaticKeySet
from gatepass.limits import BodySizeLimitMiddleware
from gatepass.logs import RequestContextMiddleware, configure_logging, request_id_var
from gatepass.principal import AccessPrincipal
from gatepass.problems import ProblemError, install_problem_handlers, problem_response
from gatepass.routing import GatepassRoute
from gatepass.settings import EdgeAuthSettings, edge_auth_settings
from gatepass.stats import AuthStats, KeySetState, register_metrics
from gatepass.tokencache import TokenCache
from gatepass.verifier import Check, Verifier

__all__ = [
    "AccessDeniedError",
    "AccessPrincipal",
    "AuthStats",
    "BadSignatureError",
    "BearerHeader",
    "BearerHeaderOrCookie",
    "BodySizeLimitMiddleware",
    "Check",
    "ClaimError",
    "CsrfError",
    "DisallowedAlgorithmError",
    "EdgeAuth",
    "EdgeAuthSettings",
    "ExpiredTokenError",
    "ForbiddenHeaderError",
    "GatepassError",
    "GatepassRoute",
    "InsufficientScopeError",
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
    "PresentedToken",
    "Principal",
    "ProblemError",
    "RemoteKeySet",
    "RequestContextMiddleware",
    "RequestError",
    "RevokedTokenError",
    "StaticKeySet",
    "TokenCache",
    "TokenError",
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
    "problem_response",
    "register_metrics",
    "request_id_var",
    "require_scopes",
]

"""The token contract, free of any web framework.

Everything needed to verify a gatepass access token, and nothing more: importing this package
loads neither FastAPI, Starlette, pydantic nor prometheus_client, so a worker, a CLI or another
framework can use it with ``cryptography``, ``httpx`` and ``orjson`` alone.

- :mod:`gatepass.core.jwks`: a JWKS parsed strictly into :class:`VerificationKey` objects;
- :mod:`gatepass.core.keyset`: where keys come from (:class:`KeySource`): the issuer's JWKS
  followed in the background (:class:`RemoteKeySet`) or a fixed set (:class:`StaticKeySet`);
- :mod:`gatepass.core.verifier`: strict verification of one token into an :class:`AccessPrincipal`;
- :mod:`gatepass.core.tokencache`: already-verified tokens, so a hot token skips the signature math;
- :mod:`gatepass.core.revocations`: the deny-set every accepted token is checked against;
- :mod:`gatepass.core.feed`: the follower that keeps it current from the issuer's revocation feed;
- :mod:`gatepass.core.oauth`: the service's own tokens, from the issuer's token endpoint (client
  credentials, token exchange), cached and renewed ahead;
- :mod:`gatepass.core.bearer`: how a token travels (RFC 6750 header or cookie), read from ASGI;
- :mod:`gatepass.core.errors`: the error tree, each error with its RFC 6750 code and HTTP status.
"""

from gatepass.core.bearer import BearerHeader, BearerHeaderOrCookie, PresentedToken, TokenSource
from gatepass.core.errors import (
    AccessDeniedError,
    BadSignatureError,
    CallerNotAllowedError,
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
    RevocationsUnavailableError,
    RevokedTokenError,
    TokenEndpointError,
    TokenEndpointUnavailableError,
    TokenError,
    TokenRequestError,
    TokenTooLargeError,
    UnknownKidError,
    WrongAudienceError,
    WrongIssuerError,
    WrongTypeError,
)
from gatepass.core.feed import FeedConfig, RevocationFeed
from gatepass.core.jwks import ParsedJwks, VerificationKey, parse_jwks
from gatepass.core.keyset import KeySetConfig, KeySource, RemoteKeySet, StaticKeySet
from gatepass.core.oauth import (
    ClientIdentity,
    Exchanger,
    IssuedToken,
    ServiceTokens,
    TokenAuth,
    TokenEndpoint,
)
from gatepass.core.principal import AccessPrincipal
from gatepass.core.revocations import DenySet, Revocation, RevocationCheck
from gatepass.core.stats import AuthStats, FeedState, KeySetState
from gatepass.core.tokencache import TokenCache
from gatepass.core.verifier import Check, Verifier

__all__ = [
    "AccessDeniedError",
    "AccessPrincipal",
    "AuthStats",
    "BadSignatureError",
    "BearerHeader",
    "BearerHeaderOrCookie",
    "CallerNotAllowedError",
    "Check",
    "ClaimError",
    "ClientIdentity",
    "CsrfError",
    "DenySet",
    "DisallowedAlgorithmError",
    "Exchanger",
    "ExpiredTokenError",
    "FeedConfig",
    "FeedState",
    "ForbiddenHeaderError",
    "GatepassError",
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
    "PresentedToken",
    "RemoteKeySet",
    "RequestError",
    "Revocation",
    "RevocationCheck",
    "RevocationFeed",
    "RevocationsUnavailableError",
    "RevokedTokenError",
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
    "parse_jwks",
]

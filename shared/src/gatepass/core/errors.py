"""The errors of token verification, each with a machine-readable code.

Every class carries two codes: ``error``, the RFC 6750 / RFC 6749 error value a client sees in
``WWW-Authenticate`` (``invalid_token``, ``insufficient_scope``, ...), and ``reason``, a finer code
for logs, metrics and the problem body (``expired``, ``bad_signature``, ``unknown_kid``, ...).

The tree has two branches that must never be confused (the PyJWT split): a bad token is the
caller's fault and answers 401; having no usable keys is ours (or the issuer's) and answers 503,
never 401, so an outage never looks like a logout.

    GatepassError
    ├── TokenError                        error="invalid_token"       → 401
    │   ├── MalformedTokenError             reason="malformed"
    │   ├── TokenTooLargeError              reason="oversize"
    │   ├── DisallowedAlgorithmError        reason="bad_algorithm"
    │   ├── ForbiddenHeaderError            reason="forbidden_header"
    │   ├── WrongTypeError                  reason="wrong_typ"
    │   ├── UnknownKidError                 reason="unknown_kid"
    │   ├── KeyAlgorithmMismatchError       reason="alg_mismatch"
    │   ├── BadSignatureError               reason="bad_signature"
    │   ├── RevokedTokenError               reason="revoked"
    │   └── ClaimError                      reason="invalid_claim"
    │       ├── MissingClaimError             reason="missing_claim"
    │       ├── ExpiredTokenError             reason="expired"
    │       ├── NotYetValidError              reason="not_yet_valid"
    │       ├── WrongIssuerError              reason="wrong_issuer"
    │       └── WrongAudienceError            reason="wrong_audience"
    ├── RequestError                      error="invalid_request"     → 400
    ├── AccessDeniedError                 error="access_denied"       → 403
    │   ├── InsufficientScopeError          error="insufficient_scope"
    │   ├── CallerNotAllowedError           error="insufficient_scope", reason="caller_not_allowed"
    │   └── CsrfError                       reason="csrf"
    ├── KeysUnavailableError              error="temporarily_unavailable" → 503
    │   ├── NoUsableKeysError               reason="no_usable_keys"
    │   └── RevocationsUnavailableError     reason="revocations_stale"
    └── TokenEndpointError                (ours, as a client: getting a token from the issuer)
        ├── TokenRequestError               error=the answer's RFC 6749 code, e.g. "invalid_scope"
        └── TokenEndpointUnavailableError   error="temporarily_unavailable", .outcome

The HTTP mapping itself lives in one place, :mod:`gatepass.challenges` (the FastAPI layer). The
token endpoint errors have none: a service that fails to get a token answers for its own reasons
(:class:`gatepass.calls.PeerUnavailableError`, a 503).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

CallerKind = Literal["user", "service"]


class GatepassError(Exception):
    """The base of every error raised by gatepass verification."""

    error: str = "invalid_request"
    reason: str = "error"
    description: str = "The request could not be authenticated."

    def __init__(self, description: str | None = None) -> None:
        if description is not None:
            self.description = description
        super().__init__(self.description)


class TokenError(GatepassError):
    """The token is bad: the caller must get a new one (401)."""

    error = "invalid_token"
    reason = "invalid_token"
    description = "The access token is invalid."


class MalformedTokenError(TokenError):
    reason = "malformed"
    description = "The access token is malformed."


class TokenTooLargeError(TokenError):
    reason = "oversize"
    description = "The access token is too large."


class DisallowedAlgorithmError(TokenError):
    reason = "bad_algorithm"
    description = "The access token's algorithm is not accepted."


class ForbiddenHeaderError(TokenError):
    reason = "forbidden_header"
    description = "The access token carries a header that is refused."


class WrongTypeError(TokenError):
    reason = "wrong_typ"
    description = "The token is not an access token (typ must be at+jwt)."


class UnknownKidError(TokenError):
    reason = "unknown_kid"
    description = "The access token was signed by an unknown key."


class KeyAlgorithmMismatchError(TokenError):
    reason = "alg_mismatch"
    description = "The access token's algorithm does not match its key."


class BadSignatureError(TokenError):
    reason = "bad_signature"
    description = "The access token's signature is invalid."


class RevokedTokenError(TokenError):
    """Raised by a revocation check (the feed follower's deny-set) passed to the verifier."""

    reason = "revoked"
    description = "The access token was revoked."


class ClaimError(TokenError):
    reason = "invalid_claim"
    description = "The access token has an invalid claim."


class MissingClaimError(ClaimError):
    reason = "missing_claim"
    description = "The access token lacks a required claim."


class ExpiredTokenError(ClaimError):
    reason = "expired"
    description = "The access token expired."


class NotYetValidError(ClaimError):
    reason = "not_yet_valid"
    description = "The access token is not valid yet."


class WrongIssuerError(ClaimError):
    reason = "wrong_issuer"
    description = "The access token comes from another issuer."


class WrongAudienceError(ClaimError):
    reason = "wrong_audience"
    description = "The access token is meant for another audience."


class RequestError(GatepassError):
    """The request itself is wrong, e.g. it carries two tokens (RFC 6750 section 3.1)."""

    error = "invalid_request"
    reason = "invalid_request"
    description = "The request carries more than one access token."


class AccessDeniedError(GatepassError):
    """The token is good but does not allow this request (403)."""

    error = "access_denied"
    reason = "access_denied"
    description = "The access token does not allow this request."


class InsufficientScopeError(AccessDeniedError):
    error = "insufficient_scope"
    reason = "insufficient_scope"
    description = "The access token lacks a required scope."

    def __init__(self, required: Iterable[str], description: str | None = None) -> None:
        self.required = tuple(required)
        super().__init__(description)


class CallerNotAllowedError(AccessDeniedError):
    """The token is good but of the other kind: a service's token on a route for users, or a
    user's (exchanged or not) on a route for services. RFC 6750 has no code of its own for
    it: the challenge says ``insufficient_scope``, the problem's ``code`` ``caller_not_allowed``."""

    error = "insufficient_scope"
    reason = "caller_not_allowed"

    def __init__(self, allowed: CallerKind) -> None:
        self.allowed: CallerKind = allowed
        super().__init__(f"This resource is for {allowed}s only.")


class CsrfError(AccessDeniedError):
    reason = "csrf"
    description = "A cookie-authenticated unsafe request needs a matching CSRF token."


class KeysUnavailableError(GatepassError):
    """We cannot verify anything right now: the issuer's keys are missing or too old (503)."""

    error = "temporarily_unavailable"
    reason = "keys_unavailable"
    description = "The service cannot verify access tokens right now."

    def __init__(self, description: str | None = None, *, retry_after: float = 30.0) -> None:
        self.retry_after = retry_after
        super().__init__(description)


class NoUsableKeysError(KeysUnavailableError):
    reason = "no_usable_keys"
    description = "No usable signing keys: the issuer's keys are missing or too old."


class RevocationsUnavailableError(KeysUnavailableError):
    """The revocation feed has not answered for longer than the edge may go on trusting its
    deny-set (``feed_max_lag``): refusing every token is ours to fix, so a 503, never a 401."""

    reason = "revocations_stale"
    description = "Revocations are not known to be current: the revocation feed is not answering."


class TokenEndpointError(GatepassError):
    """This service could not get a token of its own from the issuer's token endpoint."""

    error = "temporarily_unavailable"
    reason = "token_endpoint"
    description = "No token could be obtained from the token endpoint."


class TokenRequestError(TokenEndpointError):
    """The token endpoint answered with an RFC 6749 error (section 5.2): ``error`` is its code
    (``invalid_scope``, ``invalid_target``, ``invalid_client``...), ``status`` the HTTP status.

    The server's ``error_description`` is kept apart (``error_description``), cleaned and cut,
    never in the message: what the server says is not ours to repeat in a log line.
    """

    reason = "token_request_refused"

    def __init__(self, error: str, *, status: int, error_description: str | None = None) -> None:
        self.error = error
        self.status = status
        self.error_description = error_description
        super().__init__(f"The token endpoint refused the request: {error} (status {status}).")


class TokenEndpointUnavailableError(TokenEndpointError):
    """The token endpoint could not be reached, or answered off the contract (network error,
    timeout, 5xx after the bounded retries, an answer that is no token); ``outcome`` says which:
    ``network_error``, ``timeout``, ``http_error``, ``invalid_answer``, ``discovery_error``,
    ``too_large``."""

    reason = "token_endpoint_unavailable"

    def __init__(self, outcome: str, description: str | None = None) -> None:
        self.outcome = outcome
        super().__init__(description or f"The token endpoint is unavailable ({outcome}).")

"""The auth service's errors, each with its code; their HTTP form is decided here alone.

ProblemError (gatepass.problems)          RFC 9457 problem+json
├── InvalidCredentialsError     401  invalid_credentials  (unknown email or wrong password alike)
├── ClientAuthenticationError   401  invalid_client       (a confidential client at /login; 429 too)
├── AccountDisabledError        403  account_disabled
├── WrongPasswordError          403  wrong_password       (the current password, at a change)
├── EmailTakenError             409  email_taken
├── InvalidEmailError           422  invalid_email
├── WeakPasswordError           422  weak_password        (the detail and ``reason`` say why)
├── TooManyAttemptsError        429  too_many_attempts    (Retry-After)
├── TooManySignupsError         429  too_many_signups     (Retry-After; per client address)
├── OverloadedError             503  overloaded           (Retry-After; the hashing queue is full)
├── NotFoundError               404  not_found
├── InvalidRoleError            422  invalid_role
├── RevocationPendingError      503  revocation_pending   (Retry-After; a cut-off still ahead)
└── InvalidFeedRequestError     400  invalid_request      (a malformed feed cursor or wait)

OAuthError                                RFC 6749 §5.2 {"error", "error_description"}
├── invalid_request / invalid_grant / unsupported_grant_type / invalid_scope   400
└── invalid_client                                             401

The bearer-token answers of the protected routes (401 ``invalid_token``, 400 ``invalid_request``,
403 ``insufficient_scope``, with RFC 6750 ``WWW-Authenticate``) are the edges' own: the errors of
``gatepass.core.errors``, answered by ``gatepass.challenges`` (see ``auth_service.security``).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from gatepass.problems import ProblemError

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class InvalidCredentialsError(ProblemError):
    status = 401
    code = "invalid_credentials"
    title = "Invalid email or password"


class ClientAuthenticationError(ProblemError):
    """A login naming a confidential client that did not authenticate (or is throttled: 429)."""

    status = 401
    code = "invalid_client"
    title = "Client authentication failed"

    def __init__(self, status: int, detail: str, headers: dict[str, str]) -> None:
        super().__init__(detail, status=status, headers=headers)


class AccountDisabledError(ProblemError):
    status = 403
    code = "account_disabled"
    title = "Account disabled"


class WrongPasswordError(ProblemError):
    """A password change whose current password is wrong (403, not 401: the caller's access
    token is fine, and a 401 would tell its client to sign in again)."""

    status = 403
    code = "wrong_password"
    title = "Wrong password"


class EmailTakenError(ProblemError):
    status = 409
    code = "email_taken"
    title = "Email already registered"


class InvalidEmailError(ProblemError):
    status = 422
    code = "invalid_email"
    title = "Invalid email address"


class WeakPasswordError(ProblemError):
    status = 422
    code = "weak_password"
    title = "Password refused"

    def __init__(self, detail: str, *, reason: str) -> None:
        # ``reason`` is a fixed word (too_short, common, ...): never the password itself.
        super().__init__(detail, extra={"reason": reason})


class TooManyAttemptsError(ProblemError):
    status = 429
    code = "too_many_attempts"
    title = "Too many failed attempts"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"Too many failed logins; try again in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )


class TooManySignupsError(ProblemError):
    status = 429
    code = "too_many_signups"
    title = "Too many signups"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"Too many signups from this address; try again in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )


class OverloadedError(ProblemError):
    """Load shed: too many passwords are waiting to be hashed; answered at once, not queued."""

    status = 503
    code = "overloaded"
    title = "Too busy"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"The service is busy; try again in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )


class NotFoundError(ProblemError):
    status = 404
    code = "not_found"
    title = "Not found"


class InvalidRoleError(ProblemError):
    status = 422
    code = "invalid_role"
    title = "Unknown role"


class RevocationPendingError(ProblemError):
    """The user's token cut-off stays ahead of this replica's clock (clock skew): nothing can be
    signed for them that the cut-off would not revoke, so the caller tries again shortly."""

    status = 503
    code = "revocation_pending"
    title = "Try again shortly"

    def __init__(self) -> None:
        super().__init__(
            "A recent revocation is not in effect yet; try again in a second.",
            headers={"Retry-After": "1"},
        )


class InvalidFeedRequestError(ProblemError):
    """A revocation-feed request whose ``cursor`` or ``wait`` is malformed (the detail says which,
    never what was sent)."""

    status = 400
    code = "invalid_request"
    title = "Malformed feed request"


class OAuthError(Exception):
    """An RFC 6749 §5.2 error from the token or introspection endpoint."""

    def __init__(
        self,
        error: str,
        description: str,
        *,
        status: int = 400,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.headers = headers or {}


async def _on_oauth(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OAuthError)
    return JSONResponse(
        {"error": exc.error, "error_description": exc.description},
        status_code=exc.status,
        headers={**NO_STORE, **exc.headers},
    )


def install_oauth_handler(app: FastAPI) -> None:
    app.add_exception_handler(OAuthError, _on_oauth)

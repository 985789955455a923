"""RFC 6750 answers: a verification error as an HTTP problem and its ``WWW-Authenticate`` challenge.

The one vocabulary of every gatepass service: the edges answer through :mod:`gatepass.fastapi`,
the auth service through its own routes' dependency, and both build their answers here, from the
errors of :mod:`gatepass.core.errors`. Bodies are RFC 9457 problems whose ``code`` is the RFC 6750
(or RFC 6749) error and whose ``reason`` is the finer one.

==============================  ======  =========================================================
situation                       status  ``WWW-Authenticate``
==============================  ======  =========================================================
no token (:func:`no_token`)     401     ``Bearer realm="..."`` (RFC 6750 §3.1: no error code)
``TokenError``                  401     ``Bearer realm="...", error="invalid_token", ...``
``RequestError``                400     ``Bearer realm="...", error="invalid_request", ...``
``InsufficientScopeError``      403     ``... error="insufficient_scope", ..., scope="..."``
``CallerNotAllowedError``       403     ``... error="insufficient_scope", error_description=
                                        "This resource is for users only."`` (or services);
                                        the problem's ``code`` is ``caller_not_allowed``
another ``AccessDeniedError``   403     none (a CSRF refusal is no matter of tokens)
``KeysUnavailableError``        503     none, and ``Retry-After``: an outage is never a 401
==============================  ======  =========================================================

Quoting: the ``realm`` is an ordinary quoted-string (RFC 7235 §2.1), so a quote or a backslash in
it is escaped with a backslash. ``error``, ``error_description`` and ``scope`` may not hold a quote
or a backslash at all, escaped or not (RFC 6750 §3: %x20-21 / %x23-5B / %x5D-7E), so those are
dropped from them. Anything else that cannot stand in a header line (control characters, CR and
LF among them, and non-ASCII) is dropped from every value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from gatepass.core.errors import (
    AccessDeniedError,
    CallerKind,
    CallerNotAllowedError,
    GatepassError,
    InsufficientScopeError,
    KeysUnavailableError,
    RequestError,
    TokenError,
)
from gatepass.problems import ProblemError

__all__ = ["caller_not_allowed", "challenge", "insufficient_scope", "no_token", "problem"]

_RFC6750_PARAMS = frozenset({"error", "error_description", "scope"})


def problem(exc: GatepassError, realm: str) -> ProblemError:
    """The HTTP answer to a verification error, for a service whose challenges name ``realm``."""
    match exc:
        case TokenError():
            return _refusal(exc, realm, 401, "Invalid access token")
        case RequestError():
            return _refusal(exc, realm, 400, "Invalid request")
        case CallerNotAllowedError():
            allowed = {"allowed_caller": exc.allowed}
            return _refusal(exc, realm, 403, "Caller not allowed", allowed, code=exc.reason)
        case InsufficientScopeError():
            extra = {"required_scopes": list(exc.required)}
            scope = " ".join(exc.required)
            return _refusal(exc, realm, 403, "Insufficient scope", extra, scope=scope)
        case AccessDeniedError():
            return _problem(exc, 403, "Forbidden")
        case KeysUnavailableError():
            retry_after = {"retry-after": str(math.ceil(exc.retry_after))}
            return _problem(exc, 503, "Service unavailable", headers=retry_after)
    return _problem(exc, 400, "Bad request")


def no_token(realm: str) -> ProblemError:
    """The 401 for a request that carries no access token: a bare challenge (RFC 6750 §3.1)."""
    return ProblemError(
        "This resource needs an access token.",
        status=401,
        code="missing_token",
        title="Authentication required",
        headers={"www-authenticate": challenge(realm)},
    )


def caller_not_allowed(allowed: CallerKind, realm: str) -> ProblemError:
    """The 403 for a token of the other kind: a service's where users only are served, or a
    user's where services only are (:attr:`~gatepass.core.principal.AccessPrincipal.is_service`)."""
    return problem(CallerNotAllowedError(allowed), realm)


def insufficient_scope(required: Iterable[str], realm: str) -> ProblemError:
    """The 403 for a token that lacks some of ``required``; every required scope is named."""
    return problem(InsufficientScopeError(tuple(sorted(required))), realm)


def challenge(realm: str, **params: str) -> str:
    """A ``WWW-Authenticate: Bearer`` challenge (RFC 6750 §3), every value quoted."""
    pairs = [("realm", realm), *params.items()]
    return "Bearer " + ", ".join(f'{name}="{_quoted(name, value)}"' for name, value in pairs)


def _quoted(name: str, value: str) -> str:
    """The inside of the quoted-string for ``name``'s ``value`` (the rules in the module doc)."""
    if name in _RFC6750_PARAMS:
        return "".join(c for c in value if " " <= c <= "~" and c not in '"\\')
    return "".join(("\\" + c if c in '"\\' else c) for c in value if " " <= c <= "~")


def _refusal(
    exc: GatepassError,
    realm: str,
    status: int,
    title: str,
    extra: Mapping[str, object] | None = None,
    *,
    code: str | None = None,
    **params: str,
) -> ProblemError:
    """A problem with the RFC 6750 challenge naming the error."""
    header = challenge(realm, error=exc.error, error_description=exc.description, **params)
    headers = {"www-authenticate": header}
    return _problem(exc, status, title, headers=headers, extra=extra, code=code)


def _problem(
    exc: GatepassError,
    status: int,
    title: str,
    *,
    headers: dict[str, str] | None = None,
    extra: Mapping[str, object] | None = None,
    code: str | None = None,
) -> ProblemError:
    """The problem body: ``code`` is the RFC 6750 / 6749 error (unless told another), ``reason``
    the finer code."""
    return ProblemError(
        exc.description,
        status=status,
        code=code or exc.error,
        title=title,
        headers=headers,
        extra={"reason": exc.reason, **(extra or {})},
    )

"""How a token travels: the ``Authorization: Bearer`` header, or a cookie (RFC 6750).

A request carries exactly one token. Two ``Authorization`` headers, a header and a cookie, or the
cookie twice is ``invalid_request`` (RFC 6750 section 3.1): guessing which one the client meant is
how confused-deputy bugs start.

These read the raw ASGI headers instead of ``request.headers`` or FastAPI's ``HTTPBearer``, which
build objects this path does not need, and hand the token over as the bytes that came: the
verifier and its cache of verified tokens take bytes, so nothing is decoded on the way.

A token in a cookie is sent by the browser on its own, so an unsafe request (``POST``, ``DELETE``,
...) authenticated by cookie must also prove it comes from our pages: the double-submit check
compares a header with a second, script-readable cookie (``gatepass_csrf`` by default). The auth
service sets neither cookie today (its login answers JSON): whoever puts the token in a cookie
for a browser must also set the CSRF cookie to a random value, which the page's script copies
into the header.
"""

from __future__ import annotations

import hmac
import string
from collections.abc import Iterable, MutableMapping
from typing import Any, Literal, NamedTuple, Protocol

from gatepass.core.errors import CsrfError, RequestError

# RFC 6750 b64token: a bytes.translate() that deletes these leaves nothing of a well-formed token.
_TOKEN_CHARS = string.ascii_letters.encode() + string.digits.encode() + b"-._~+/="
# An ASGI connection scope (the ASGI spec's dict), typed here so this layer needs no framework.
Scope = MutableMapping[str, Any]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class PresentedToken(NamedTuple):
    """A token as sent (bytes, not yet checked), and how it came (the CSRF check differs)."""

    raw: bytes
    via: Literal["header", "cookie"]

    @property
    def token(self) -> str:
        """The token as text, after the RFC 6750 character check (``RequestError`` if it fails)."""
        return checked_token(self.raw).decode("ascii")


class TokenSource(Protocol):
    """Where an edge looks for the access token."""

    def extract(self, scope: Scope) -> PresentedToken | None:
        """The one token of the request, ``None`` if there is none; ``RequestError`` if several."""
        ...


class BearerHeader:
    """``Authorization: Bearer <token>`` only (apps, services)."""

    def extract(self, scope: Scope) -> PresentedToken | None:
        token = _bearer(scope)
        return None if token is None else PresentedToken(token, "header")


class BearerHeaderOrCookie:
    """The header, or else a cookie (browsers); both at once is refused.

    ``csrf_cookie``/``csrf_header`` name the double-submit pair checked on unsafe methods when
    the token came in the cookie; set ``csrf_cookie=None`` only behind another CSRF defence.
    """

    def __init__(
        self,
        cookie_name: str,
        *,
        csrf_cookie: str | None = "gatepass_csrf",
        csrf_header: str = "x-csrf-token",
    ) -> None:
        self.cookie_name = cookie_name
        self.csrf_cookie = csrf_cookie
        self._csrf_header = csrf_header.lower().encode("latin-1")

    def extract(self, scope: Scope) -> PresentedToken | None:
        cookies = _header_values(scope, b"cookie")
        from_header = _bearer(scope)
        # An emptied cookie (what a logout leaves behind) is no token at all.
        from_cookie = _single(_cookie_values(cookies, self.cookie_name), "the token cookie") or None
        if from_header is not None and from_cookie is not None:
            raise RequestError("The request carries a token in both a header and a cookie.")
        if from_header is not None:
            return PresentedToken(from_header, "header")
        if from_cookie is None:
            return None
        self._check_csrf(scope, cookies)
        return PresentedToken(from_cookie.encode("latin-1"), "cookie")

    def _check_csrf(self, scope: Scope, cookies: list[bytes]) -> None:
        if self.csrf_cookie is None or scope.get("method", "GET") in _SAFE_METHODS:
            return
        expected = _single(_cookie_values(cookies, self.csrf_cookie), "the CSRF cookie")
        sent = _header_values(scope, self._csrf_header)
        if (
            not expected
            or len(sent) != 1
            or not hmac.compare_digest(sent[0], expected.encode("latin-1"))
        ):
            raise CsrfError


def _header_values(scope: Scope, name: bytes) -> list[bytes]:
    """Every value of one header (ASGI gives names in lower case), in order."""
    return [value for key, value in scope["headers"] if key == name]


def _bearer(scope: Scope) -> bytes | None:
    """The token of the request's one ``Authorization`` header; another scheme is no token."""
    value: bytes | None = None
    for key, found in scope["headers"]:
        if key == b"authorization":
            if value is not None:
                raise RequestError("The request carries more than one Authorization header.")
            value = found
    if value is None:
        return None
    scheme, _, credentials = value.partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    return credentials.strip(b" ")


def checked_token(token: bytes) -> bytes:
    """``token`` if it is RFC 6750 b64token characters only (the verifier checks the rest); else
    ``RequestError``, a 400."""
    if not token or token.translate(None, _TOKEN_CHARS):
        raise RequestError("The bearer token is malformed.")
    return token


def _cookie_values(headers: Iterable[bytes], name: str) -> list[str]:
    """Every value of cookie ``name`` (a list, so a duplicated cookie can be refused)."""
    found = []
    for header in headers:
        for pair in header.decode("latin-1").split(";"):
            key, sep, value = pair.strip().partition("=")
            if sep and key == name:
                found.append(value.strip().strip('"'))
    return found


def _single(values: list[str], what: str) -> str | None:
    if len(values) > 1:
        raise RequestError(f"The request carries {what} more than once.")
    return values[0] if values else None

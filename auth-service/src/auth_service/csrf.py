"""Cross-site request forgery defence for what a browser posts with its cookies.

The browser's session lives in cookies (:mod:`auth_service.browser`), and a browser sends cookies
with a request another site makes it send. So every unsafe request a cookie can authenticate
(every POST/PUT/PATCH/DELETE under ``/app``, the hosted login and signup forms included: a login
CSRF would sign the victim in as the attacker; and the POSTs of ``/authorize`` and
``/end-session``) must show that our own page sent it:

- a token equal to the CSRF cookie (double submit; compared in constant time): a form sends it as
  the field ``csrf_token``, the page's script as the header ``X-CSRF-Token``. The cookie is
  HttpOnly, SameSite=Strict, and ``__Host-`` prefixed when Secure (no subdomain can plant one);
  the page learns the value only from the server, which renders it into its forms and a
  ``<meta name="csrf-token">``;
- an ``Origin``, when the browser sends one, equal to the issuer's origin;
- a ``Sec-Fetch-Site`` that is not ``cross-site``.

A refusal is :class:`CsrfError`: 403 ``csrf_failed``. As a :class:`ProblemError` it is answered
as problem JSON anywhere; :func:`auth_service.browser.install_csrf_handler` makes a form post's
refusal an HTML page. The message never says which check failed in terms of the values (no
cookie or token is ever logged or echoed).
"""

from __future__ import annotations

import hmac
import re
import secrets
from urllib.parse import urlsplit

from fastapi import Request, Response

from auth_service.config import Settings
from gatepass.problems import ProblemError

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "CsrfError",
    "check_csrf",
    "csrf_cookie_name",
    "csrf_for",
    "csrf_token",
    "issuer_origin",
    "new_csrf_token",
    "set_csrf_cookie",
]

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_COOKIE = "gp_csrf"
_STATE_KEY = "gatepass_csrf_token"
# What new_csrf_token makes (32 random bytes, base64url): a cookie of any other shape is
# replaced, never rendered into a page.
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class CsrfError(ProblemError):
    """An unsafe request this service's own page did not send (or cannot be shown to have)."""

    status = 403
    code = "csrf_failed"
    title = "Request refused"


def csrf_cookie_name(settings: Settings) -> str:
    """``__Host-gp_csrf`` when cookies are Secure (the prefix requires it), else ``gp_csrf``."""
    return f"__Host-{_COOKIE}" if settings.cookie_secure else _COOKIE


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.services.settings
    return settings


def _cookie_token(request: Request, settings: Settings) -> str | None:
    value = request.cookies.get(csrf_cookie_name(settings))
    return value if value is not None and _TOKEN_SHAPE.fullmatch(value) else None


def csrf_token(request: Request, settings: Settings) -> str:
    """The token of this request's pages: the cookie's, else one made for this request (the same
    one however often it is asked for; :func:`set_csrf_cookie` must then send it)."""
    made: str | None = getattr(request.state, _STATE_KEY, None)
    if made is not None:
        return made
    return _cookie_token(request, settings) or _remember(request, new_csrf_token())


def _remember(request: Request, token: str) -> str:
    setattr(request.state, _STATE_KEY, token)
    return token


def set_csrf_cookie(response: Response, settings: Settings, token: str) -> None:
    """The CSRF cookie: HttpOnly (the page reads the token from the HTML, never the cookie),
    SameSite=Strict, Path=/, Secure unless ``cookie_secure`` is off; a session cookie."""
    response.set_cookie(
        csrf_cookie_name(settings),
        token,
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )


def csrf_for(request: Request, response: Response, settings: Settings) -> str:
    """The token to render into the page ``response`` answers, the cookie set on it if the
    browser does not hold it yet."""
    token = csrf_token(request, settings)
    if _cookie_token(request, settings) != token:
        set_csrf_cookie(response, settings, token)
    return token


def renew_csrf(request: Request, response: Response, settings: Settings) -> str:
    """A fresh token at a change of who is signed in (login, signup, logout): a token the
    browser held before does not carry over."""
    token = _remember(request, new_csrf_token())
    set_csrf_cookie(response, settings, token)
    return token


def issuer_origin(issuer: str) -> str:
    """The issuer's origin as a browser serialises it in ``Origin``: scheme://host[:port],
    lower case, the scheme's default port left out."""
    parts = urlsplit(issuer)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    port = parts.port
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


async def check_csrf(request: Request, form_token: str | None) -> None:
    """Refuse (:class:`CsrfError`) an unsafe request our own page did not send: see the module.
    ``form_token`` is the form's ``csrf_token`` field; None: the ``X-CSRF-Token`` header is
    read instead."""
    settings = _settings(request)
    if request.headers.get("sec-fetch-site", "").strip().lower() == "cross-site":
        raise CsrfError("The request came from another site.")
    origin = request.headers.get("origin")
    if origin is not None and origin.strip().lower() != issuer_origin(settings.issuer):
        raise CsrfError("The request came from another origin.")
    presented = form_token if form_token is not None else request.headers.get(CSRF_HEADER)
    expected = _cookie_token(request, settings)
    if not presented or expected is None:
        raise CsrfError("The page's security token is missing; reload the page and try again.")
    if not hmac.compare_digest(presented.encode("utf-8", "replace"), expected.encode("ascii")):
        raise CsrfError("The page's security token does not match; reload the page and try again.")

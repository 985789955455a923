"""Browser sign-in: a backend-for-frontend. The tokens live in HttpOnly cookies and never reach
the page's JavaScript; the service's own pages (``routes/web.py``, the OpenID Connect pages)
read the session from them.

Cookies (the names take the ``__Host-``/``__Secure-`` prefixes when Secure, which only
``cookie_secure=False``, allowed in development alone, turns off):

- ``__Host-gp_access``: the access token; Path=/, HttpOnly, SameSite=Lax, Max-Age = its lifetime.
  Lax: a top-level navigation from a relying party to ``/authorize`` carries it.
- ``__Secure-gp_refresh``: the refresh token; Path=/app/refresh (sent nowhere else), HttpOnly,
  SameSite=Strict, Max-Age = the session's absolute lifetime.
- ``__Host-gp_csrf``: the CSRF token (:mod:`auth_service.csrf`).

Pages are jinja2 templates (``templates/``, autoescaped) with a strict Content-Security-Policy:
no inline script or style, nothing from another origin, no framing, forms posting to this origin
only (plus, for the hosted login page, the origin ``/authorize`` will redirect to: Chromium checks
``form-action`` along the whole redirect chain of a form post).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from auth_service import revocation
from auth_service.config import Settings
from auth_service.csrf import (
    CSRF_FIELD,
    CSRF_HEADER,
    CsrfError,
    check_csrf,
    csrf_for,
    csrf_token,
    renew_csrf,
    set_csrf_cookie,
)
from auth_service.devices import TokenPair
from auth_service.models import Session as DeviceSession
from auth_service.state import Services
from gatepass.core.errors import GatepassError
from gatepass.problems import PROBLEM_JSON

__all__ = [
    "CSRF_HEADER",
    "LOGOUT_BY_REFRESH_PATH",
    "REFRESH_PATH",
    "BrowserSession",
    "CsrfError",
    "access_cookie_name",
    "check_csrf",
    "clear_session_cookies",
    "content_security_policy",
    "csrf_for",
    "csrf_refusal",
    "current_session",
    "install_csrf_handler",
    "is_form_post",
    "login_url",
    "page_headers",
    "refresh_cookie_name",
    "render",
    "renew_csrf",
    "safe_return_to",
    "set_csrf_cookie",
    "set_session_cookies",
]

REFRESH_PATH = "/app/refresh"
# Where the page's log-out form posts: under REFRESH_PATH, so the refresh cookie comes along.
LOGOUT_BY_REFRESH_PATH = REFRESH_PATH + "/logout"
RETURN_TO_PREFIX = "/authorize?"
RETURN_TO_MAX = 4096
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# A redirect URI's host[:port] as a CSP source may name it: a DNS name (A-labels) or an IP literal.
_CSP_HOST = re.compile(r"(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


@dataclass(frozen=True)
class BrowserSession:
    user_id: str
    session_id: str
    auth_time: datetime  # the session's created_at: when the password was checked
    # The cookie's token, for the service's own calls on the user's behalf (the page's buttons);
    # never rendered whole, kept out of any repr (a log line, a traceback).
    access_token: str = field(default="", repr=False)


# --- cookies -------------------------------------------------------------------------------------


def access_cookie_name(settings: Settings) -> str:
    return "__Host-gp_access" if settings.cookie_secure else "gp_access"


def refresh_cookie_name(settings: Settings) -> str:
    return "__Secure-gp_refresh" if settings.cookie_secure else "gp_refresh"


def set_session_cookies(response: Response, settings: Settings, pair: TokenPair) -> None:
    """Both cookies of a signed-in browser, from a login's or a refresh's token pair."""
    response.set_cookie(
        access_cookie_name(settings),
        pair.access_token,
        max_age=pair.expires_in,
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )
    response.set_cookie(
        refresh_cookie_name(settings),
        pair.refresh_token,
        max_age=settings.session_absolute_lifetime,
        path=REFRESH_PATH,
        secure=settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )


def clear_session_cookies(response: Response, settings: Settings) -> None:
    """Expire both session cookies (each with the path and attributes it was set with, or the
    browser keeps it)."""
    response.delete_cookie(
        access_cookie_name(settings),
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )
    response.delete_cookie(
        refresh_cookie_name(settings),
        path=REFRESH_PATH,
        secure=settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )


def access_token(request: Request, settings: Settings) -> str | None:
    return request.cookies.get(access_cookie_name(settings)) or None


def refresh_token(request: Request, settings: Settings) -> str | None:
    return request.cookies.get(refresh_cookie_name(settings)) or None


async def current_session(svc: Services, request: Request) -> BrowserSession | None:
    """The browser's session, from its access cookie: a token this service signed for itself
    (audience ``auth``, the edges' checks), a user's own (not a service's, not exchanged), not
    revoked, its session live. None otherwise: the page shows the signed-out view. A device
    signed out elsewhere stops here at once, whatever its token's remaining lifetime."""
    token = access_token(request, svc.settings)
    if token is None:
        return None
    try:
        principal = await svc.verifier.verify(token)
    except GatepassError:
        return None
    if principal.is_service or principal.act is not None or principal.sid is None:
        return None
    claims = dict(principal.claims)
    async with svc.sessions() as db:
        if await revocation.is_revoked(db, claims, svc.clock()):
            return None
        session = await db.get(DeviceSession, principal.sid)
    if session is None or session.user_id != principal.sub:
        return None
    return BrowserSession(principal.sub, session.id, session.created_at, token)


# --- where a sign-in continues -------------------------------------------------------------------


def safe_return_to(value: str | None) -> str | None:
    """``value`` if a sign-in may continue there: an authorization request of this service
    (relative, ``/authorize?...``), nothing else (no other path, no absolute or ``//`` URL, no
    backslash or control character a browser might read otherwise). None otherwise."""
    if not value or len(value) > RETURN_TO_MAX or not value.startswith(RETURN_TO_PREFIX):
        return None
    if any(ch == "\\" or ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return None
    return value


def login_url(return_to: str) -> str:
    """The hosted login page continuing to ``return_to`` (which must be a ``/authorize?``
    request: :func:`safe_return_to`)."""
    if safe_return_to(return_to) is None:
        raise ValueError("return_to must be a relative /authorize? request")
    return "/app/login?return_to=" + quote(return_to, safe="")


def redirect_origin(return_to: str | None) -> str | None:
    """The origin of the ``redirect_uri`` an authorization request names (where it will
    redirect once signed in), for the login page's ``form-action``; None without one."""
    if return_to is None:
        return None
    values = parse_qs(urlsplit(return_to).query).get("redirect_uri", [])
    if len(values) != 1:
        return None
    target = urlsplit(values[0])
    if target.scheme not in ("https", "http") or _CSP_HOST.fullmatch(target.netloc) is None:
        # Only a plain ASCII host[:port]: nothing that could end the CSP source expression or
        # widen it (``*``), and nothing a header cannot carry (a non-Latin-1 name was a 500).
        return None
    return f"{target.scheme}://{target.netloc}"


# --- pages ---------------------------------------------------------------------------------------


_templates = Environment(
    loader=PackageLoader("auth_service", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def content_security_policy(form_action: Iterable[str] = ()) -> str:
    """The pages' policy: everything from this origin only (no inline script or style), no
    framing, no ``<base>``, forms to this origin (and the ``form_action`` origins given)."""
    targets = " ".join(["'self'", *form_action])
    return f"default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action {targets}"


def page_headers(form_action: Iterable[str] = ()) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(form_action),
        "Referrer-Policy": "same-origin",
        "X-Frame-Options": "DENY",
    }


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    form_action: Iterable[str] = (),
) -> HTMLResponse:
    """A page from ``templates/``: the CSRF token in its context (``csrf_token``; the cookie
    set when new), the page headers (CSP, no framing, no-store from the HTTP layer)."""
    settings: Settings = request.app.state.services.settings
    token = csrf_token(request, settings)
    body = _templates.get_template(name).render(
        {
            "csrf_token": token,
            "csrf_field": CSRF_FIELD,
            "page_calls": sorted(settings.page_calls),
            **(context or {}),
        }
    )
    response = HTMLResponse(
        body, status_code=status, headers={**page_headers(form_action), **(headers or {})}
    )
    csrf_for(request, response, settings)
    return response


def is_form_post(request: Request) -> bool:
    """A form's post (answered with pages and redirects), not the page script's fetch (answered
    with JSON)."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media_type in _FORM_TYPES


def csrf_refusal(request: Request, exc: CsrfError) -> Response:
    """A CSRF refusal: a page for a form's post, problem JSON for a script."""
    if is_form_post(request):
        return render(request, "refused.html", {"message": exc.detail}, status=exc.status)
    body = exc.to_dict(request.url.path)
    return Response(json.dumps(body), status_code=exc.status, media_type=PROBLEM_JSON)


async def _on_csrf(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CsrfError)
    return csrf_refusal(request, exc)


def install_csrf_handler(app: FastAPI) -> None:
    """Answer a :class:`CsrfError` raised anywhere in ``app`` as :func:`csrf_refusal` does
    (without it, the problem handlers answer problem JSON to form posts too)."""
    app.add_exception_handler(CsrfError, _on_csrf)


# --- the token taken apart -----------------------------------------------------------------------


@dataclass(frozen=True)
class TokenParts:
    header: str  # pretty JSON
    payload: str  # pretty JSON
    signature_start: str  # the first characters only
    signature_length: int


SIGNATURE_SHOWN = 12


def token_parts(token: str) -> TokenParts | None:
    """The three parts of a compact JWS for the page: the header and payload decoded (anyone
    holding the token can read them: base64url is an encoding, not encryption), the signature
    cut short, so the page never holds a token anyone could use."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header, payload = (_decoded(part) for part in parts[:2])
    except (ValueError, binascii.Error):
        return None
    signature = parts[2]
    return TokenParts(
        json.dumps(header, indent=2, sort_keys=True),
        json.dumps(payload, indent=2, sort_keys=True),
        signature[:SIGNATURE_SHOWN],
        len(signature),
    )


def _decoded(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


# --- static files --------------------------------------------------------------------------------

STATIC_TYPES = {"app.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}


def static_file(name: str) -> bytes | None:
    """One of the page's static files (a fixed list: no path from a request reaches the disk)."""
    if name not in STATIC_TYPES:
        return None
    return resources.files("auth_service").joinpath("static", name).read_bytes()

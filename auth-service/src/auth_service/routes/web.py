"""The web page and the browser's sign-in: a backend-for-frontend (see :mod:`auth_service.browser`).

- ``GET /app``: signed out, links to sign in and sign up; signed in, the user's email, the access
  token taken apart, the devices with a sign-out each, buttons that call the edges, log out.
- ``GET|POST /app/login``, ``GET|POST /app/signup``: the hosted forms. A sign-in continues to
  ``return_to`` when it is an ``/authorize?`` request of this service, else to ``/app``.
- ``POST /app/logout`` (and ``/app/refresh/logout``), ``POST /app/refresh``,
  ``POST /app/api/devices/{id}/sign-out``, ``POST /app/api/call/{name}``: what the page's forms
  and its script post.

Every POST is CSRF-checked (:mod:`auth_service.csrf`; the route class answers a refusal as a
page for a form, problem JSON for the script). A form's post is answered with a page or a 303; the
script's with JSON (problem details on errors; a 401 ``not_signed_in`` tells it to refresh the
session and try once more).

The page's buttons call the edges through this service (``POST /app/api/call/{name}`` -> GET
``settings.page_calls[name]`` with the access cookie's token as Bearer): tokens never reach the
page's JavaScript. Tests hand the calls a transport of their own by setting
``app.state.page_call_transport`` (an ``httpx.AsyncBaseTransport``); unset, httpx's own.

These are pages, not API: they are left out of the OpenAPI document.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import httpx
from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.routing import APIRoute

from auth_service import accounts, browser, devices
from auth_service.authorization import AUTH_AFTER
from auth_service.browser import (
    LOGOUT_BY_REFRESH_PATH,
    BrowserSession,
    CsrfError,
    check_csrf,
    render,
)
from auth_service.csrf import CSRF_FIELD
from auth_service.errors import NO_STORE, OAuthError
from auth_service.models import User
from auth_service.outbound import tls_context
from auth_service.security import client_ip
from auth_service.state import Services, Svc
from gatepass.problems import ProblemError, problem_response
from gatepass.text import ResourceId, printable, refuse_controls

CALL_TIMEOUT = 5.0
CALL_ANSWER_MAX = 256 * 1024
USER_AGENT_MAX = 512  # sessions.user_agent
EMAIL_MAX = 320  # users.email
PASSWORD_MAX = 1024  # as the JSON API: over the policy maximum, so the policy says why
MAX_FIELDS = 10
_FORM = "application/x-www-form-urlencoded"

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class WebRoute(APIRoute):
    """Answers a CSRF refusal as the caller can read it: a page for a form, JSON for a script
    (whether or not the app installs :func:`auth_service.browser.install_csrf_handler`)."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except CsrfError as exc:
                return browser.csrf_refusal(request, exc)

        return guarded


router = APIRouter(tags=["browser"], include_in_schema=False, route_class=WebRoute)


class BadFormError(ProblemError):
    status = 400
    code = "malformed_request"
    title = "Malformed form"


async def _form(request: Request) -> dict[str, str]:
    """A urlencoded form, each field once (a form the page renders never repeats one)."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != _FORM:
        raise BadFormError("The form must be sent as application/x-www-form-urlencoded.")
    try:
        pairs = parse_qsl(
            (await request.body()).decode("utf-8"),
            keep_blank_values=True,
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadFormError("The form could not be read.") from exc
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise BadFormError("A form field is repeated.")
        form[name] = value
    return form


def _problem(status_code: int, code: str, title: str, detail: str) -> JSONResponse:
    return problem_response(status_code, code, title, detail, headers=NO_STORE)


def _not_signed_in() -> JSONResponse:
    return _problem(401, "not_signed_in", "Not signed in", "Sign in again to go on.")


def _see_other(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=status.HTTP_303_SEE_OTHER)


def _user_agent(request: Request) -> str | None:
    return printable(request.headers.get("user-agent"), USER_AGENT_MAX)


# --- the page ------------------------------------------------------------------------------------


@router.get("/app")
async def page(request: Request, svc: Svc) -> Response:
    session = await browser.current_session(svc, request)
    if session is None:
        return render(request, "app.html", {"signed_in": False})
    return render(request, "app.html", await _signed_in_context(svc, session))


async def _signed_in_context(svc: Services, session: BrowserSession) -> dict[str, Any]:
    user = await accounts.get_user(svc.sessions, session.user_id)
    rows = await devices.list_sessions(svc.sessions, svc.clock, session.user_id)
    parts = browser.token_parts(session.access_token)
    claims: dict[str, Any] = json.loads(parts.payload) if parts is not None else {}
    return {
        "signed_in": True,
        "email": user.email,
        "token": parts,
        "expires_at": _when(claims.get("exp")),
        "devices": [
            {
                "id": row.id,
                "user_agent": row.user_agent or "an unnamed device",
                "ip": row.ip or "",
                "created_at": _shown(row.created_at),
                "last_used_at": _shown(row.last_used_at),
                "client_id": row.client_id,
                "current": row.id == session.session_id,
            }
            for row in rows
        ],
    }


def _shown(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _when(timestamp: object) -> str | None:
    if not isinstance(timestamp, int):
        return None
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@router.get("/app/static/{name}")
async def static(name: str) -> Response:
    """The page's stylesheet and script (a fixed list), cacheable for a few minutes."""
    content = browser.static_file(name)
    if content is None:
        return _problem(404, "not_found", "Not found", "No such file.")
    return Response(
        content,
        media_type=browser.STATIC_TYPES[name],
        headers={"Cache-Control": "public, max-age=300"},
    )


# --- signing in ----------------------------------------------------------------------------------


async def _form_page(
    request: Request,
    name: str,
    return_to: str | None,
    *,
    error: str | None = None,
    email: str = "",
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """The login or signup form; its ``form-action`` also allows the origin the authorization
    request will redirect to (the login's 303 chain ends there). For an authorization request,
    the page names the registered app the person is signing in to."""
    target = browser.redirect_origin(return_to)
    app = await _app_asking(request.app.state.services, return_to)
    # The access cookie of a live session may just have run out (the refresh cookie reaches
    # /app/refresh alone): the page's script refreshes once and goes back to the authorization
    # request, so a signed-in person is not asked again. Not when that request asked for a new
    # sign-in (its marker): a refreshed session is no new sign-in, and would be sent back here.
    silent_refresh = (
        return_to is not None
        and error is None
        and AUTH_AFTER not in parse_qs(urlsplit(return_to).query)
    )
    return render(
        request,
        name,
        {
            "return_to": return_to,
            "app": app,
            "silent_refresh": silent_refresh,
            "error": error,
            "email": email,
            "password_min": request.app.state.services.settings.password_min_length,
        },
        status=status_code,
        headers=headers,
        form_action=[target] if target else [],
    )


async def _app_asking(svc: Services, return_to: str | None) -> str | None:
    """The client id of the authorization request ``return_to`` (already a safe one), when it is
    a registered, enabled app; None otherwise (an unknown name is never shown: any text could be
    put there)."""
    if return_to is None:
        return None
    named = parse_qs(urlsplit(return_to).query).get("client_id", [])
    if len(named) != 1:
        return None
    client = await svc.client_cache.find(svc.sessions, named[0])
    if client is None or client.kind != "app" or client.disabled:
        return None
    return client.client_id


@router.get("/app/login")
async def login_page(request: Request, return_to: str | None = None) -> Response:
    return await _form_page(request, "login.html", browser.safe_return_to(return_to))


@router.get("/app/signup")
async def signup_page(request: Request, return_to: str | None = None) -> Response:
    return await _form_page(request, "signup.html", browser.safe_return_to(return_to))


def _credentials(form: dict[str, str]) -> tuple[str, str] | None:
    """The email and password of a form, within their bounds; None if either is missing or
    unusable (the page says so, echoing neither)."""
    email = form.get("email", "").strip()
    password = form.get("password", "")
    if not email or not password or len(email) > EMAIL_MAX or len(password) > PASSWORD_MAX:
        return None
    try:
        refuse_controls(email)
    except ValueError:
        return None
    return email, password


@router.post("/app/login")
async def login(request: Request, svc: Svc) -> Response:
    async def check_password(email: str, password: str, ip: str) -> User:
        return await accounts.authenticate(svc, email, password, ip)

    return await _sign_in_form(
        request, svc, "login.html", "Enter your email address and your password.", check_password
    )


@router.post("/app/signup")
async def signup(request: Request, svc: Svc) -> Response:
    async def create_account(email: str, password: str, ip: str) -> User:
        return await accounts.signup(svc, email, password, ip=ip)

    return await _sign_in_form(
        request, svc, "signup.html", "Enter an email address and a password.", create_account
    )


async def _sign_in_form(
    request: Request,
    svc: Services,
    template: str,
    incomplete: str,
    user_of: Callable[[str, str, str], Awaitable[User]],
) -> Response:
    """A sign-in or sign-up form posted: the CSRF check, then ``user_of`` (which checks or
    creates the account), a session and its cookies; or the form again, saying what went wrong."""
    form = await _form(request)
    await check_csrf(request, form.get(CSRF_FIELD, ""))
    return_to = browser.safe_return_to(form.get("return_to"))
    credentials = _credentials(form)
    if credentials is None:
        return await _form_page(
            request, template, return_to, error=incomplete, email=_echo(form), status_code=422
        )
    email, password = credentials
    ip = client_ip(request)
    try:
        user = await user_of(email, password, ip)
        pair = await _open_session(svc, request, user, ip)
    except ProblemError as exc:
        return await _form_page(
            request,
            template,
            return_to,
            error=exc.detail,
            email=email,
            status_code=exc.status,
            headers=exc.headers,
        )
    return _signed_in(request, svc, pair, return_to)


def _echo(form: dict[str, str]) -> str:
    """The email to put back in the form, if it is one that can be (bounded, one line)."""
    email = form.get("email", "").strip()
    try:
        return refuse_controls(email) if len(email) <= EMAIL_MAX else ""
    except ValueError:
        return ""


async def _open_session(svc: Services, request: Request, user: User, ip: str) -> devices.TokenPair:
    return await devices.open_session(
        svc,
        user,
        client_id=svc.settings.default_client_id,
        user_agent=_user_agent(request),
        ip=ip,
        audiences=svc.settings.default_app_audiences,
    )


def _signed_in(
    request: Request, svc: Services, pair: devices.TokenPair, return_to: str | None
) -> Response:
    """The cookies of the new session, a fresh CSRF token (none from before the sign-in carries
    over), and on to where the sign-in was asked for."""
    response = _see_other(return_to or "/app")
    browser.set_session_cookies(response, svc.settings, pair)
    browser.renew_csrf(request, response, svc.settings)
    return response


# --- the session ---------------------------------------------------------------------------------


async def _posted_token(request: Request) -> str | None:
    """The CSRF token of a post: the form's field for a form, else the header (None)."""
    if browser.is_form_post(request):
        return (await _form(request)).get(CSRF_FIELD, "")
    return None


@router.post("/app/logout")
@router.post(LOGOUT_BY_REFRESH_PATH)
async def logout(request: Request, svc: Svc) -> Response:
    """Sign this browser out: its session revoked (the edges hear of it through the revocation
    feed), its cookies cleared. The script's call without a live access token gets 401 (it
    refreshes and tries again, so that the session is revoked, not just forgotten).

    The page's log-out form posts to ``/app/refresh/logout``, which the refresh cookie reaches:
    a browser without script whose access cookie ran out since the page loaded sends no access
    token, and its session is then ended by the refresh token (as ``POST /revoke`` would)."""
    form_post = browser.is_form_post(request)
    await check_csrf(request, await _posted_token(request))
    session = await browser.current_session(svc, request)
    refresh = browser.refresh_token(request, svc.settings)
    if session is None and refresh is None and not form_post:
        return _not_signed_in()
    if session is not None:
        await devices.revoke_session(svc, session.user_id, session.session_id, "logout")
    elif refresh is not None:
        with contextlib.suppress(OAuthError):  # issued to another client: nothing of ours to end
            await devices.revoke_token(
                svc, refresh, "refresh_token", client_id=svc.settings.default_client_id
            )
    response: Response = (
        _see_other("/app") if form_post else Response(status_code=status.HTTP_204_NO_CONTENT)
    )
    browser.clear_session_cookies(response, svc.settings)
    browser.renew_csrf(request, response, svc.settings)
    return response


@router.post("/app/refresh")
async def refresh(request: Request, svc: Svc) -> Response:
    """A new access token (and refresh token: they rotate) for the browser's session, from the
    refresh cookie, which is sent to this path alone. 204; 401 when the session has ended (the
    cookies cleared)."""
    await check_csrf(request, await _posted_token(request))
    token = browser.refresh_token(request, svc.settings)
    pair = None
    if token is not None:
        try:
            pair = await devices.refresh(
                svc, token, client_id=svc.settings.default_client_id, ip=client_ip(request)
            )
        except OAuthError:
            pair = None
    if pair is None:
        refused = _problem(
            401, "not_signed_in", "Not signed in", "The session has ended; sign in again."
        )
        browser.clear_session_cookies(refused, svc.settings)
        return refused
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    browser.set_session_cookies(response, svc.settings, pair)
    return response


@router.post("/app/api/devices/{session_id}/sign-out")
async def sign_out_device(session_id: ResourceId, request: Request, svc: Svc) -> Response:
    """Sign one of the user's devices out (this one too: then the cookies are cleared)."""
    form_post = browser.is_form_post(request)
    await check_csrf(request, await _posted_token(request))
    session = await browser.current_session(svc, request)
    if session is None:
        return _see_other("/app") if form_post else _not_signed_in()
    try:
        await devices.revoke_session(svc, session.user_id, session_id, "signed_out_by_user")
    except ProblemError as exc:
        if form_post:
            return render(request, "refused.html", {"message": exc.detail}, status=exc.status)
        raise
    response: Response = (
        _see_other("/app") if form_post else Response(status_code=status.HTTP_204_NO_CONTENT)
    )
    if session_id == session.session_id:
        browser.clear_session_cookies(response, svc.settings)
    return response


# --- the page's buttons --------------------------------------------------------------------------


@router.post("/app/api/call/{name}")
async def call(name: str, request: Request, svc: Svc) -> Response:
    """GET ``page_calls[name]`` for the signed-in user with the access cookie's token; answers
    ``{"service", "status", "body"}`` with the edge's status and JSON body (200 whatever the edge
    said: the page shows it). 401 ``not_signed_in`` without a live session; 503
    ``peer_unavailable`` when the edge does not answer in time, 502 ``bad_gateway`` when its
    answer is not JSON."""
    await check_csrf(request, None)
    url = svc.settings.page_calls.get(name)
    if url is None:
        return _problem(404, "not_found", "Not found", "No such service to call.")
    session = await browser.current_session(svc, request)
    if session is None:
        return _not_signed_in()
    transport: httpx.AsyncBaseTransport | None = getattr(
        request.app.state, "page_call_transport", None
    )
    try:
        async with (
            httpx.AsyncClient(
                transport=transport,
                verify=tls_context(),
                timeout=CALL_TIMEOUT,
                follow_redirects=False,
            ) as http,
            http.stream(
                "GET",
                url,
                headers={
                    "Authorization": f"Bearer {session.access_token}",
                    "Accept": "application/json",
                },
            ) as answer,
        ):
            content = await _bounded_body(answer)
    except httpx.HTTPError:
        return _problem(
            503,
            "peer_unavailable",
            "Service unavailable",
            f"The {name} service did not answer; try again in a moment.",
        )
    readable, body = _json_body(answer, content)
    if not readable:
        return _problem(
            502,
            "bad_gateway",
            "Bad gateway",
            f"The {name} service gave an answer that is not JSON.",
        )
    return JSONResponse(
        {"service": name, "status": answer.status_code, "body": body}, headers=NO_STORE
    )


async def _bounded_body(answer: httpx.Response) -> bytes | None:
    """The answer's body, read no further than :data:`CALL_ANSWER_MAX` (None beyond): an edge's
    endless or huge answer must not be held in memory whole before its size is checked."""
    content = bytearray()
    async for chunk in answer.aiter_bytes():
        content += chunk
        if len(content) > CALL_ANSWER_MAX:
            return None
    return bytes(content)


def _json_body(answer: httpx.Response, content: bytes | None) -> tuple[bool, Any]:
    """(True, the answer's JSON), or (False, None) for a body that is not JSON or is over
    :data:`CALL_ANSWER_MAX` (``content`` None). An empty body (a 204) reads as null."""
    if content is None:
        return False, None
    if not content:
        return True, None
    media_type = answer.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        return False, None
    try:
        return True, json.loads(content)
    except ValueError:
        return False, None

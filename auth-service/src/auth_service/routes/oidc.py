"""OpenID Connect's browser-facing endpoints: ``/authorize`` (the authorization code flow with
PKCE, :mod:`auth_service.authorization`), ``/userinfo``, and ``/end-session`` (RP-initiated
logout).

``/authorize`` and ``/end-session`` are visited by a person's browser: their refusals are pages
(never JSON, never a redirect to a URI not known good), and they are left out of the OpenAPI
document (the discovery document names them). ``/userinfo`` is an API: a bearer token (a user's,
naming ``/userinfo``'s own audience, ``Settings.userinfo_audience``, as apps' tokens do, with the
``openid`` scope), RFC 6750 errors.

Both ``GET`` and ``POST`` are served (OpenID Connect Core §3.1.2.1, §5.3.1; RP-Initiated Logout
§2). A ``POST /authorize`` is an authorization request like a ``GET``: relying parties send it
from their own pages, so it is not CSRF-checked (a forged one can do no more than a link can,
and its answer goes to the client's registered redirect URI). A ``POST /end-session`` whose
``id_token_hint`` names the user this browser is signed in as signs out at once, as a ``GET``
does; any other is the confirmation form of this service's own page, CSRF-checked (a post from
elsewhere with a hint but without the form's token is shown that page).
"""

from __future__ import annotations

import contextlib
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel

from auth_service import accounts, authorization, browser, devices, idtokens
from auth_service.authorization import PageError, RedirectError
from auth_service.csrf import CSRF_FIELD, CsrfError
from auth_service.errors import NO_STORE, NotFoundError
from auth_service.idtokens import IdTokenHint
from auth_service.security import CALLER_ANSWERS, REALM, Caller, UserinfoCaller
from auth_service.state import Services, Svc
from gatepass import challenges
from gatepass.openapi import CHALLENGE, bearer_security, merge_responses, problem_responses

router = APIRouter(tags=["openid"])

_FORM = "application/x-www-form-urlencoded"
MAX_FIELDS = 30
LOGOUT_REASON = "rp_logout"


def _see_other(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=status.HTTP_303_SEE_OTHER)


def _error_page(request: Request, message: str) -> Response:
    return browser.render(request, "oidc/error.html", {"message": message}, status=400)


async def _params(request: Request) -> dict[str, str]:
    """The request's parameters: the query of a GET, the urlencoded body of a POST; each once."""
    if request.method == "POST":
        media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type != _FORM:
            raise PageError("The request must be a form (application/x-www-form-urlencoded).")
        try:
            pairs = parse_qsl(
                (await request.body()).decode("utf-8"),
                keep_blank_values=True,
                max_num_fields=MAX_FIELDS,
            )
        except (UnicodeDecodeError, ValueError):
            raise PageError("The request's form could not be read.") from None
        return authorization.single_params(pairs)
    return authorization.single_params(request.query_params.multi_items())


# --- the authorization endpoint ------------------------------------------------------------------


@router.api_route("/authorize", methods=["GET", "POST"], include_in_schema=False)
async def authorize(request: Request, svc: Svc) -> Response:
    """An authorization request: a code to the redirect URI, a sign-in first, or a refusal."""
    try:
        params = await _params(request)
        auth_request = await authorization.parse_request(svc, params)
        return await _authorized(svc, request, auth_request)
    except PageError as exc:
        return _error_page(request, exc.message)
    except RedirectError as exc:
        return _see_other(authorization.error_location(svc.settings.issuer, exc))


async def _authorized(
    svc: Services, request: Request, auth_request: authorization.AuthorizationRequest
) -> Response:
    session = await browser.current_session(svc, request)
    now = svc.clock()
    auth_time = session.auth_time if session is not None else None
    if session is None or authorization.needs_sign_in(auth_request, auth_time, now):
        if "none" in auth_request.prompt:
            raise auth_request.refuse("login_required", "The user must sign in.")
        return _see_other(browser.login_url(authorization.return_to(svc, auth_request, now)))
    code = await authorization.issue_code(
        svc,
        auth_request,
        user_id=session.user_id,
        session_id=session.session_id,
        auth_time=session.auth_time,
    )
    location = authorization.redirect_with(
        auth_request.redirect_uri,
        {"code": code, "state": auth_request.state, "iss": svc.settings.issuer},
    )
    return _see_other(location)


# --- userinfo ------------------------------------------------------------------------------------


class UserInfo(BaseModel):
    """OpenID Connect Core §5.3.2: the user's id, and with the ``email`` scope their address
    (never verified by this service, so ``email_verified`` is false)."""

    sub: str
    email: str | None = None
    email_verified: bool | None = None


USERINFO_ANSWERS = merge_responses(
    CALLER_ANSWERS,
    problem_responses(
        403,
        descriptions={
            403: "The access token lacks the openid scope (`insufficient_scope`), or is not a "
            "user's own (a service's, or one acting for a user)."
        },
        headers={403: [CHALLENGE]},
    ),
)


async def _userinfo(caller: Caller, svc: Services) -> JSONResponse:
    if "openid" not in caller.scopes:
        raise challenges.insufficient_scope(("openid",), REALM)
    body: dict[str, object] = {"sub": caller.user_id}
    if "email" in caller.scopes:
        user = await accounts.get_user(svc.sessions, caller.user_id)
        body.update(email=user.email, email_verified=False)
    return JSONResponse(body, headers=NO_STORE)


@router.get(
    "/userinfo",
    response_model=UserInfo,
    response_model_exclude_none=True,
    responses=USERINFO_ANSWERS,
    openapi_extra=bearer_security("openid"),
)
async def userinfo(caller: UserinfoCaller, svc: Svc) -> JSONResponse:
    """The signed-in user's claims, for the client holding their access token."""
    return await _userinfo(caller, svc)


@router.post(
    "/userinfo",
    response_model=UserInfo,
    response_model_exclude_none=True,
    responses=USERINFO_ANSWERS,
    openapi_extra=bearer_security("openid"),
)
async def userinfo_post(caller: UserinfoCaller, svc: Svc) -> JSONResponse:
    """As ``GET /userinfo`` (OpenID Connect Core §5.3.1 allows both)."""
    return await _userinfo(caller, svc)


# --- RP-initiated logout -------------------------------------------------------------------------


@router.api_route("/end-session", methods=["GET", "POST"], include_in_schema=False)
async def end_session(request: Request, svc: Svc) -> Response:
    """RP-initiated logout: with an ``id_token_hint`` of the user this browser is signed in as,
    the hinted session and the browser's are signed out at once. Otherwise (no hint, another
    user's, or no browser signed in) the person confirms on a page first, as RP-Initiated Logout
    1.0 §2 requires: a link must not sign anybody out of the service, and holding someone's ID
    token is not being them. The page's POST (with its CSRF token) signs out the hinted session
    and the browser's. Then back to a registered post-logout URI (with ``state``), or a
    signed-out page."""
    try:
        params = await _params(request)
        hint_token = params.get("id_token_hint")
        hint = await _hint(svc, hint_token)
        client_id = params.get("client_id")
        if hint is not None and client_id is not None and client_id != hint.client_id:
            raise PageError("The client_id is not the application the id_token_hint names.")
        client_id = client_id or (hint.client_id if hint is not None else None)
        target = await _post_logout_target(svc, client_id, params.get("post_logout_redirect_uri"))
        state = params.get("state")
        if state is not None and len(state) > authorization.STATE_MAX:
            raise PageError("The state is too long.")
    except PageError as exc:
        return _error_page(request, exc.message)
    session = await browser.current_session(svc, request)
    if hint is None or session is None or session.user_id != hint.subject:
        if request.method != "POST" or (hint is not None and CSRF_FIELD not in params):
            # The page names the application only once its registration vouched for it (the
            # post-logout URI was looked up): any text could be sent as a client_id.
            named = client_id if target is not None else None
            return _confirmation(request, named, target, state, hint_token)
        try:
            await browser.check_csrf(request, params.get(CSRF_FIELD))
        except CsrfError as exc:
            return browser.csrf_refusal(request, exc)
    await _sign_out(svc, hint, session)
    response = (
        _see_other(authorization.redirect_with(target, {"state": state}))
        if target is not None
        else browser.render(request, "oidc/signed_out.html")
    )
    browser.clear_session_cookies(response, svc.settings)
    return response


async def _hint(svc: Services, value: str | None) -> IdTokenHint | None:
    if value is None:
        return None
    hint = await idtokens.read_id_token_hint(svc, value)
    if hint is None:
        raise PageError("The id_token_hint is not an ID token this service issued.")
    return hint


async def _post_logout_target(svc: Services, client_id: str | None, uri: str | None) -> str | None:
    """``uri`` when it is one of the application's registered post-logout URIs (compared
    exactly); None when none is asked for."""
    if uri is None:
        return None
    if client_id is None:
        raise PageError("A post-logout redirect URI needs the client_id or an id_token_hint.")
    client = await svc.client_cache.find(svc.sessions, client_id)
    if client is None or client.kind != "app" or client.disabled:
        raise PageError("The application is not registered here, or it is disabled.")
    if uri not in client.post_logout_redirect_uris:
        raise PageError("The post-logout redirect URI is not one this application registered.")
    return uri


def _confirmation(
    request: Request,
    client_id: str | None,
    target: str | None,
    state: str | None,
    hint: str | None,
) -> Response:
    """The page that asks before signing out; its form posts here (with the hint, if any), and
    the answer may redirect to the post-logout URI (so the form may lead to its origin:
    ``form-action``)."""
    origins = [] if target is None else [_origin(target)]
    return browser.render(
        request,
        "oidc/end_session.html",
        {
            "client_id": client_id,
            "post_logout_redirect_uri": target,
            "state": state,
            "id_token_hint": hint,
        },
        form_action=origins,
    )


def _origin(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"


async def _sign_out(
    svc: Services, hint: IdTokenHint | None, session: browser.BrowserSession | None
) -> None:
    """Revoke the hinted session and the browser's own ``session`` (its user is the hint's, or
    the person confirmed). Each revocation reaches the edges through the feed."""
    if hint is not None and hint.session_id is not None:
        with contextlib.suppress(NotFoundError):  # gone, or not the hint's user's
            await devices.revoke_session(svc, hint.subject, hint.session_id, LOGOUT_REASON)
    if session is not None:
        with contextlib.suppress(NotFoundError):  # already ended: it was the hint's
            await devices.revoke_session(svc, session.user_id, session.session_id, LOGOUT_REASON)

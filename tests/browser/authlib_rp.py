"""A relying party built on authlib's Starlette integration, run as a process by the browser tests.

Nothing of gatepass in it: authlib reads the issuer's discovery document
(``server_metadata_url``), sends the browser to ``/authorize`` with PKCE S256, ``state`` and a
``nonce`` of its own making, redeems the code authenticating with ``client_secret_basic``, and
validates the ID token with the keys of the discovered ``jwks_uri`` (signature, ``iss``, ``aud``,
``exp``, ``nonce``). Its refusals show as a page with the OAuth error code (``mismatching_state``
for a tampered ``state``), which is what the tests read.

Settings (environment): ``RP_ISSUER``, ``RP_CLIENT_ID``, ``RP_CLIENT_SECRET``, ``RP_PORT``,
``RP_SCOPE``. Run: ``python authlib_rp.py`` (uvicorn on 127.0.0.1:``RP_PORT``).
"""

from __future__ import annotations

import html
import os
import secrets
import warnings
from typing import Any
from urllib.parse import urlencode

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

# authlib prefers httpx2 and, finding httpx, says so (at import and later): not this RP's business.
warnings.filterwarnings("ignore", message="The httpx module is deprecated")
from authlib.integrations.starlette_client import OAuth, OAuthError  # noqa: E402

ISSUER = os.environ.get("RP_ISSUER", "http://127.0.0.1:8000")
PORT = int(os.environ.get("RP_PORT", "8010"))
BASE = f"http://127.0.0.1:{PORT}"

oauth = OAuth()
oauth.register(
    name="gatepass",
    client_id=os.environ.get("RP_CLIENT_ID", "authlib-rp"),
    client_secret=os.environ.get("RP_CLIENT_SECRET", ""),
    server_metadata_url=f"{ISSUER}/.well-known/openid-configuration",
    client_kwargs={
        "scope": os.environ.get("RP_SCOPE", "openid email"),
        "code_challenge_method": "S256",
        "token_endpoint_auth_method": "client_secret_basic",
    },
)


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
        f"</title></head><body><main><h1>{html.escape(title)}</h1>{body}</main></body></html>",
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


async def home(request: Request) -> Response:
    claims: dict[str, Any] | None = request.session.get("claims")
    if not claims:
        return page("Not signed in", '<p><a id="login" href="/login">Sign in with gatepass</a></p>')
    rows = "".join(
        f'<dt>{name}</dt><dd id="claim-{name}">{html.escape(str(claims.get(name, "")))}</dd>'
        for name in ("iss", "sub", "aud", "sid", "nonce", "auth_time", "email")
    )
    return page("Signed in", f'<dl>{rows}</dl><p><a id="logout" href="/logout">Sign out</a></p>')


async def login(request: Request) -> Response:
    response: Response = await oauth.gatepass.authorize_redirect(request, f"{BASE}/callback")
    return response


async def callback(request: Request) -> Response:
    try:
        token: dict[str, Any] = await oauth.gatepass.authorize_access_token(request)
    except OAuthError as error:
        return page("Sign-in failed", f'<p id="error">{html.escape(str(error.error))}</p>', 400)
    request.session["claims"] = dict(token["userinfo"])
    request.session["id_token"] = token["id_token"]
    return RedirectResponse("/", status_code=303)


async def logout(request: Request) -> Response:
    id_token = request.session.pop("id_token", None)
    request.session.pop("claims", None)
    if id_token is None:
        return RedirectResponse("/", status_code=303)
    metadata: dict[str, Any] = await oauth.gatepass.load_server_metadata()
    state = secrets.token_urlsafe(16)
    request.session["logout_state"] = state
    query = urlencode(
        {
            "id_token_hint": id_token,
            "post_logout_redirect_uri": f"{BASE}/signed-out",
            "state": state,
        }
    )
    return RedirectResponse(f"{metadata['end_session_endpoint']}?{query}", status_code=303)


async def signed_out(request: Request) -> Response:
    expected = request.session.pop("logout_state", None)
    ok = expected is not None and request.query_params.get("state") == expected
    return page("Signed out", f'<p id="state-ok">{str(ok).lower()}</p>', 200 if ok else 400)


async def ready(request: Request) -> Response:
    return page("ready", "")


app = Starlette(
    routes=[
        Route("/", home),
        Route("/login", login),
        Route("/callback", callback),
        Route("/logout", logout),
        Route("/signed-out", signed_out),
        Route("/ready", ready),
    ],
    middleware=[
        Middleware(
            SessionMiddleware,
            secret_key=secrets.token_urlsafe(32),
            session_cookie="authlib_rp",
            same_site="lax",
            https_only=False,
        )
    ],
)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="info")

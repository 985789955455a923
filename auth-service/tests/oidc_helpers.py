"""The OpenID Connect flow as a relying party and a browser go through it, for the tests of
``/authorize``, the code grant, ID tokens, ``/userinfo`` and ``/end-session``.

A browser is signed in as the web page signs it in: a session opened by a password login, its
access token in the access cookie (:func:`browser_cookie`). Apps are registered through the
registry with their redirect URIs (:func:`register_app`). ``authorize`` asks ``/authorize`` with
PKCE (:class:`Pkce`) and answers the redirect; ``redeem`` trades the code at ``/token``;
``verify_id_token`` checks an ID token with the published JWKS alone, as a relying party does.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
from api_users import PASSWORD, jose_part, new_email, signup
from asgi_clients import BASE_URL
from service_clients import ClientSecret, add_client

from auth_service.browser import access_cookie_name
from auth_service.state import Services

PUBLIC_APP = "photos"
CONFIDENTIAL_APP = "photos-server"
REDIRECT_URI = "https://photos.example/callback"
LOGOUT_URI = "https://photos.example/signed-out"


async def register_app(
    services: Services,
    client_id: str = PUBLIC_APP,
    *,
    confidential: bool = False,
    redirect_uris: tuple[str, ...] = (REDIRECT_URI,),
    post_logout_redirect_uris: tuple[str, ...] = (LOGOUT_URI,),
    audiences: tuple[str, ...] = ("mail", "video"),
    scopes: tuple[str, ...] = ("mail:read", "mail:send", "video:read"),
) -> ClientSecret | None:
    """An app with its redirect URIs and what its tokens may carry; its credentials when it is
    confidential."""
    _, secret = await add_client(
        services,
        client_id=client_id,
        kind="app",
        auth_method="client_secret_basic" if confidential else "none",
        audiences=list(audiences),
        scopes=list(scopes),
        redirect_uris=list(redirect_uris),
        post_logout_redirect_uris=list(post_logout_redirect_uris),
    )
    return None if secret is None else ClientSecret(client_id, secret)


@dataclass(frozen=True)
class Pkce:
    """A PKCE verifier and its S256 challenge (RFC 7636 §4.1, §4.2)."""

    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode()).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class Browser:
    """A signed-in browser: its user and the cookie that says so."""

    user_id: str
    email: str
    cookie: str  # "name=value"

    @property
    def headers(self) -> dict[str, str]:
        return {"Cookie": self.cookie}


async def sign_in(http: httpx.AsyncClient, services: Services, email: str | None = None) -> Browser:
    """A browser signed in (a fresh user unless ``email`` is given): a password login's access
    token in the access cookie, as the hosted login page leaves it."""
    if email is None:
        email = new_email("oidc")
        await signup(http, email)
    answer = await http.post("/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    user_id = jose_part(token, 1)["sub"]
    return Browser(user_id, email, f"{access_cookie_name(services.settings)}={token}")


def authorize_params(pkce: Pkce | None = None, **overrides: str | None) -> dict[str, str]:
    """An OpenID Connect authorization request of :data:`PUBLIC_APP`; ``None`` drops one."""
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": PUBLIC_APP,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid email",
        "state": secrets.token_urlsafe(12),
        "nonce": secrets.token_urlsafe(12),
        "code_challenge": (pkce or Pkce()).challenge,
        "code_challenge_method": "S256",
        **overrides,
    }
    return {name: value for name, value in params.items() if value is not None}


def query_of(location: str) -> dict[str, str]:
    """A redirect's query, each parameter once."""
    parsed = parse_qs(urlsplit(location).query, keep_blank_values=True)
    assert all(len(values) == 1 for values in parsed.values()), location
    return {name: values[0] for name, values in parsed.items()}


async def authorize(
    http: httpx.AsyncClient, browser: Browser | None, params: Mapping[str, str]
) -> httpx.Response:
    return await http.get(
        "/authorize", params=dict(params), headers=browser.headers if browser else None
    )


async def code_for(
    http: httpx.AsyncClient, browser: Browser, params: Mapping[str, str]
) -> dict[str, str]:
    """The redirect's query of an authorization that succeeds (``code``, ``state``, ``iss``)."""
    answer = await authorize(http, browser, params)
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.split("?")[0] == params["redirect_uri"].split("?")[0], location
    query = query_of(location)
    assert "code" in query, location
    return query


async def redeem(
    http: httpx.AsyncClient,
    code: str,
    pkce: Pkce,
    *,
    client_id: str = PUBLIC_APP,
    auth: httpx.Auth | None = None,
    redirect_uri: str = REDIRECT_URI,
    **extra: str,
) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": pkce.verifier,
        **({"client_id": client_id} if auth is None else {}),
        **extra,
    }
    return await http.post("/token", data=form, auth=auth or httpx.USE_CLIENT_DEFAULT)


async def tokens_for(
    http: httpx.AsyncClient, browser: Browser, **overrides: str | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """The whole flow for :data:`PUBLIC_APP`: the token answer, and the authorization request."""
    pkce = Pkce()
    params = authorize_params(pkce, **overrides)
    query = await code_for(http, browser, params)
    answer = await redeem(http, query["code"], pkce)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body, params


async def verify_id_token(
    http: httpx.AsyncClient, token: str, audience: str = PUBLIC_APP
) -> dict[str, Any]:
    """An ID token's claims, checked as a relying party checks them: the key its ``kid`` names
    in the published JWKS, the issuer, the audience. (``iat`` and ``exp`` are the test clock's:
    the caller compares them.)"""
    keys = {key["kid"]: key for key in (await http.get("/.well-known/jwks.json")).json()["keys"]}
    header = jose_part(token, 0)
    assert header["typ"] == "JWT"
    jwk = jwt.PyJWK(keys[header["kid"]])
    claims: dict[str, Any] = jwt.decode(
        token,
        jwk.key,
        algorithms=[jwk.algorithm_name],
        audience=audience,
        issuer=BASE_URL,
        options={"verify_exp": False, "verify_iat": False},
    )
    return claims


def at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()

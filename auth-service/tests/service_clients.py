"""Registered clients for the grant tests, and the token endpoint called as they call it.

``register(services, "mail-svc", audiences=[...], scopes=[...], resource="mail")`` registers a
client_secret_basic client through the registry (as the admin API does) and answers its
credentials: an ``httpx.Auth`` that sends them with HTTP Basic (RFC 6749 §2.3.1).
``add_client(services, **fields)`` registers any other client; ``register_signer`` a
private_key_jwt one, whose :class:`Signer` makes its assertions (RFC 7523).

Users and their tokens: ``user_tokens(http)`` signs a fresh user up and in;
``introspect(http, token)`` asks ``/introspect`` as :data:`INTROSPECTOR`, an introspection
client a module names in its settings (its ``auth_settings`` fixture).
"""

from __future__ import annotations

import secrets
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

import httpx
import jwt
from api_users import PASSWORD, new_email, signup
from asgi_clients import BASE_URL
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from fake_clock import FakeClock
from fastapi import Request
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from auth_service import registry
from auth_service.clients import ASSERTION_TYPE
from auth_service.registry import RegisteredClient
from auth_service.state import Services

CLIENT_CREDENTIALS = "client_credentials"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
TOKEN_URL = f"{BASE_URL}/token"

INTROSPECTOR = ("introspector", "introspector-secret-0123456789")
"""An introspection client's id and secret, as :func:`introspect` sends them."""
INTROSPECTION_CLIENTS = {INTROSPECTOR[0]: INTROSPECTOR[1]}
"""What a module's settings name it with: ``settings_for(introspection_clients=...)``."""


@dataclass(frozen=True)
class ClientSecret(httpx.Auth):
    """A registered client's id and secret, sent with HTTP Basic (each form-encoded first)."""

    client_id: str
    secret: str = field(repr=False)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        basic = httpx.BasicAuth(quote_plus(self.client_id), quote_plus(self.secret))
        yield from basic.auth_flow(request)


# --- registering ---------------------------------------------------------------------------------


async def add_client(services: Services, **fields: Any) -> tuple[RegisteredClient, str | None]:
    """``registry.register`` with ``fields`` at the service's clock: the client, and its secret
    if it is a client_secret_basic one."""
    async with services.sessions() as db:
        return await registry.register(db, services.settings, now=services.clock(), **fields)


async def register(
    services: Services,
    client_id: str,
    *,
    audiences: Sequence[str],
    scopes: Sequence[str],
    resource: str | None = None,
    kind: str = "service",
) -> ClientSecret:
    _, secret = await add_client(
        services,
        client_id=client_id,
        kind=kind,
        auth_method="client_secret_basic",
        audiences=audiences,
        scopes=scopes,
        resource=resource,
    )
    assert secret is not None
    return ClientSecret(client_id, secret)


async def mail_as_deployed(services: Services) -> ClientSecret:
    """Mail as the clients file's own example declares it: it reads the feed (audience
    ``auth``, ``revocations:read``) and calls video for users (``video``, ``video:read``)."""
    return await register(
        services,
        "mail-svc",
        audiences=["auth", "video"],
        scopes=["revocations:read", "video:read"],
        resource="mail",
    )


async def set_disabled(services: Services, client_id: str, disabled: bool) -> None:
    async with services.sessions() as db:
        await registry.set_disabled(
            db, services.settings, client_id, disabled, now=services.clock()
        )


# --- signed assertions (private_key_jwt) ---------------------------------------------------------

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


@dataclass
class Signer:
    """A client's private key, and assertions signed with it."""

    client_id: str
    kid: str
    alg: str
    key: PrivateKey
    clock: FakeClock

    def public_jwk(self) -> dict[str, Any]:
        return public_jwk(self.key, self.kid)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(self.clock().timestamp())
        claims: dict[str, Any] = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": TOKEN_URL,
            "iat": now,
            "exp": now + 60,
            "jti": secrets.token_urlsafe(16),
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def assertion(self, *, headers: dict[str, Any] | None = None, **overrides: Any) -> str:
        return jwt.encode(
            self.claims(**overrides),
            self.key,
            algorithm=self.alg,
            headers={"kid": self.kid, **(headers or {})},
        )


def new_key(alg: str) -> PrivateKey:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: PrivateKey, kid: str) -> dict[str, Any]:
    public: dict[str, Any]
    if isinstance(key, ec.EllipticCurvePrivateKey):
        public = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        public = OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        public = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**public, "kid": kid}


def ec_jwk(kid: str = "k1", *, private: bool = False) -> dict[str, Any]:
    """A new P-256 key as a JWK: its public half, or the whole key (``private``)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return {**ECAlgorithm.to_jwk(key if private else key.public_key(), as_dict=True), "kid": kid}


async def register_signer(
    services: Services, clock: FakeClock, client_id: str = "video", alg: str = "ES256"
) -> Signer:
    """A private_key_jwt service (audience ``mail``, ``mail:notify``) with its key inline."""
    signer = Signer(client_id, f"{client_id}-1", alg, new_key(alg), clock)
    await add_client(
        services,
        client_id=client_id,
        kind="service",
        auth_method="private_key_jwt",
        audiences=["mail"],
        scopes=["mail:notify"],
        jwks={"keys": [signer.public_jwk()]},
    )
    return signer


def asserted(assertion: str, **form: str) -> dict[str, str]:
    """The token request's form that authenticates with ``assertion``."""
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion, **form}


def token_request(headers: dict[str, str] | None = None) -> Request:
    """A ``POST /token`` as ``clients.token_caller`` sees it (the form is given apart)."""
    raw = [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    return Request({"type": "http", "method": "POST", "path": "/token", "headers": raw})


# --- users and the token endpoint ----------------------------------------------------------------


async def login_body(http: httpx.AsyncClient, **extra: Any) -> dict[str, Any]:
    """A fresh user signed up: the body of a login as them; ``extra``: more of it (``resource``,
    ``client_id``)."""
    email = new_email()
    await signup(http, email)
    return {"email": email, "password": PASSWORD, **extra}


async def user_tokens(http: httpx.AsyncClient, **extra: Any) -> dict[str, Any]:
    """A fresh user's login answer (its tokens); ``extra``: more of the login's body."""
    answer = await http.post("/login", json=await login_body(http, **extra))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def introspect(http: httpx.AsyncClient, token: str) -> dict[str, Any]:
    """``/introspect``'s answer for ``token``, asked as :data:`INTROSPECTOR`."""
    answer = await http.post("/introspect", data={"token": token}, auth=INTROSPECTOR)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def client_credentials(
    http: httpx.AsyncClient, auth: httpx.Auth | None, **form: str | list[str]
) -> httpx.Response:
    body = {"grant_type": CLIENT_CREDENTIALS, **form}
    return await http.post("/token", data=body, auth=auth or httpx.USE_CLIENT_DEFAULT)


async def service_token(http: httpx.AsyncClient, auth: httpx.Auth, **form: str) -> str:
    """A token of the client's own (client credentials), which it must get."""
    answer = await client_credentials(http, auth, **form)
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


async def exchange(
    http: httpx.AsyncClient,
    auth: httpx.Auth | None,
    subject_token: str,
    **form: str | list[str],
) -> httpx.Response:
    body: dict[str, Any] = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": subject_token,
        "subject_token_type": ACCESS_TOKEN,
        **form,
    }
    return await http.post("/token", data=body, auth=auth or httpx.USE_CLIENT_DEFAULT)


def oauth_error(response: httpx.Response) -> str:
    """The RFC 6749 §5.2 error code of a refusal."""
    error: str = response.json()["error"]
    return error

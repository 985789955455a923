"""Users made and signed in through the auth app's HTTP API, and tokens read the way a client
reads them: what the account, session and admin API tests share.

``jose_part`` only decodes (it verifies nothing); ``verify_with_jwks`` verifies with PyJWT, an
implementation independent of the service's own, against the JWKS the app publishes.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import httpx
import jwt
from asgi_clients import BASE_URL

PASSWORD = "correct horse battery staple 42"


def new_email(prefix: str = "user") -> str:
    return f"{prefix}-{secrets.token_hex(4)}@example.com"


async def signup(http: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    """Sign ``email`` up; its user id."""
    response = await http.post("/signup", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    user_id: str = response.json()["id"]
    return user_id


async def login(http: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await http.post("/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def new_user(
    http: httpx.AsyncClient, prefix: str = "user"
) -> tuple[str, str, dict[str, Any]]:
    """Sign up and log in a fresh user: (email, user id, login answer)."""
    email = new_email(prefix)
    user_id = await signup(http, email)
    return email, user_id, await login(http, email)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def jose_part(token: str, index: int) -> dict[str, Any]:
    """The decoded header (0) or payload (1) of a compact JWS, unverified."""
    part = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


async def verify_with_jwks(
    http: httpx.AsyncClient, token: str, audience: str = "mail"
) -> dict[str, Any]:
    """The token's claims, verified as an edge would: with the published key its ``kid`` names.

    PyJWT checks ``exp`` and ``iat`` against the real time: the app's clock must be near it.
    """
    keys = {key["kid"]: key for key in (await http.get("/.well-known/jwks.json")).json()["keys"]}
    jwk = jwt.PyJWK(keys[jose_part(token, 0)["kid"]])
    claims: dict[str, Any] = jwt.decode(
        token, jwk.key, algorithms=[jwk.algorithm_name], audience=audience, issuer=BASE_URL
    )
    return claims

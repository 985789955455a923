"""Small helpers for tests that talk to a running auth service over HTTP."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import httpx
import jwt

STRONG_PASSWORD = "correct horse battery staple 42"


def new_email(prefix: str = "user") -> str:
    return f"{prefix}-{secrets.token_hex(4)}@example.com"


def signup(client: httpx.Client, email: str, password: str = STRONG_PASSWORD) -> str:
    response = client.post("/signup", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    user_id: str = response.json()["id"]
    return user_id


def login(client: httpx.Client, email: str, password: str = STRONG_PASSWORD) -> dict[str, Any]:
    response = client.post("/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def new_user(client: httpx.Client, prefix: str = "user") -> tuple[str, str, dict[str, Any]]:
    """Sign up and log in a fresh user: (email, user id, login response)."""
    email = new_email(prefix)
    user_id = signup(client, email)
    return email, user_id, login(client, email)


def refresh(client: httpx.Client, refresh_token: str) -> httpx.Response:
    return client.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token}
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def jose_part(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def verify_with_jwks(client: httpx.Client, token: str, audience: str = "mail") -> dict[str, Any]:
    """Verify a token the way an edge would: by the JWKS key its ``kid`` names."""
    header = jose_part(token, 0)
    keys = {k["kid"]: k for k in client.get("/.well-known/jwks.json").json()["keys"]}
    jwk = jwt.PyJWK(keys[header["kid"]])
    claims: dict[str, Any] = jwt.decode(
        token,
        jwk.key,
        algorithms=[jwk.algorithm_name],
        audience=audience,
        issuer=str(client.base_url).rstrip("/"),
    )
    return claims

"""An attacker's toolbox: JWS tokens signed by keys the issuer never saw, or by nobody at all.

Tests that check what an edge refuses build their tokens here. Everything is built by hand or with
PyJWT from the attacker's own keys: the issuer's private keys never leave the auth service.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm

__all__ = [
    "AttackerKey",
    "access_claims",
    "b64url",
    "b64url_json",
    "hs256_token",
    "random_kid",
    "replace_payload",
    "unsigned_token",
]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: object) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def random_kid() -> str:
    """A well-formed key id nobody published (the shape of the issuer's: URL-safe, ~43 chars)."""
    return secrets.token_urlsafe(32)


def access_claims(issuer: str, audience: str | list[str], **overrides: Any) -> dict[str, Any]:
    """The claims of a plausible access token: what a real one carries, valid for five minutes."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": f"usr_{secrets.token_hex(8)}",
        "aud": audience,
        "exp": now + 300,
        "iat": now,
        "jti": secrets.token_urlsafe(16),
        "sid": f"ses_{secrets.token_hex(8)}",
        "client_id": "gatepass-app",
        "scope": "mail:read mail:send video:read video:upload",
    }
    claims.update(overrides)
    return claims


class AttackerKey:
    """A signing key pair of the attacker's own (ES256 by default, or RS256)."""

    def __init__(self, alg: str = "ES256") -> None:
        self.alg = alg
        if alg == "ES256":
            self.private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
                ec.generate_private_key(ec.SECP256R1())
            )
        elif alg == "RS256":
            self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            raise ValueError(f"unsupported algorithm {alg}")

    def public_jwk(self, kid: str) -> dict[str, Any]:
        if not isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            raise TypeError("public_jwk is only needed for the EC key")
        jwk: dict[str, Any] = ECAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {**jwk, "kid": kid, "alg": self.alg, "use": "sig"}

    def sign(self, claims: dict[str, Any], *, kid: str | None, **header: Any) -> str:
        """A compact JWS of ``claims``: ``typ: at+jwt`` unless ``header`` says otherwise."""
        fields: dict[str, Any] = {"typ": "at+jwt", **header}
        if kid is not None:
            fields["kid"] = kid
        return jwt.encode(claims, self.private_key, algorithm=self.alg, headers=fields)


def unsigned_token(claims: dict[str, Any], *, kid: str, alg: str = "none") -> str:
    """``alg: none`` (any spelling): header and payload, an empty signature."""
    header = {"alg": alg, "typ": "at+jwt", "kid": kid}
    return f"{b64url_json(header)}.{b64url_json(claims)}."


def hs256_token(claims: dict[str, Any], secret: bytes, *, kid: str) -> str:
    """HMAC-SHA256 keyed with ``secret``: the algorithm-confusion attack when the secret is the
    issuer's public key (PyJWT refuses to build this, so it is done by hand).
    """
    header = {"alg": "HS256", "typ": "at+jwt", "kid": kid}
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
    signature = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def replace_payload(token: str, claims: dict[str, Any]) -> str:
    """``token`` with its payload swapped for ``claims``: header and signature kept as they were."""
    header, _, signature = token.split(".")
    return f"{header}.{b64url_json(claims)}.{signature}"

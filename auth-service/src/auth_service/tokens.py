"""Access tokens (RFC 9068 JWTs) and refresh tokens (opaque, stored as hashes).

An access token names its user by an opaque id only: anyone holding it can read its payload.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt

from auth_service.config import Settings
from auth_service.keys import KeyManager, SigningMaterial

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - the RFC 9068 media type, not a secret
MAX_TOKEN_BYTES = 8192
LEEWAY_SECONDS = 60
MAX_SCOPE_LENGTH = 1024
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), joined by single spaces.
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+(?: [\x21\x23-\x5b\x5d-\x7e]+)*")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(16)}"


def new_refresh_token() -> str:
    """256 bits from the OS's CSPRNG, base64url: 43 characters."""
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    # A fast hash is right here: the token has 256 bits of entropy, nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


def scopes_for(roles: list[str], settings: Settings) -> list[str]:
    scopes: set[str] = set()
    for role in roles:
        scopes.update(settings.role_scopes.get(role, ()))
    return sorted(scopes)


def parse_scope(value: str) -> frozenset[str] | None:
    """The scope tokens of an RFC 6749 §3.3 ``scope`` parameter; None if it is malformed."""
    if len(value) > MAX_SCOPE_LENGTH or _SCOPE.fullmatch(value) is None:
        return None
    return frozenset(value.split(" "))


@dataclass(frozen=True)
class AccessGrant:
    user_id: str
    session_id: str | None
    client_id: str
    scopes: list[str]
    audience: list[str]


def sign_access_token(
    key: SigningMaterial, settings: Settings, grant: AccessGrant, now: datetime
) -> str:
    """Sign with ``key``, fetched by the caller *before* it opens a database transaction (a
    snapshot reload needs a connection of its own, and must never wait on one held by itself)."""
    iat = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "sub": grant.user_id,
        "aud": grant.audience[0] if len(grant.audience) == 1 else grant.audience,
        "exp": iat + settings.access_token_ttl,
        "iat": iat,
        "jti": secrets.token_urlsafe(16),
        "client_id": grant.client_id,
        "scope": " ".join(grant.scopes),
    }
    if grant.session_id:
        claims["sid"] = grant.session_id
    return jwt.encode(
        claims,
        key.private_key,
        algorithm=key.alg,
        headers={"kid": key.kid, "typ": ACCESS_TOKEN_TYPE},
    )


class InvalidAccessToken(Exception):
    """Our own access token failed verification; the message is safe to show."""


async def verify_access_token(
    keys: KeyManager,
    settings: Settings,
    token: str,
    now: datetime,
    *,
    audience: str | None,
) -> dict[str, Any]:
    """Verify a token this service signed: signature, typ, iss, exp, and aud if one is given."""
    if len(token) > MAX_TOKEN_BYTES:
        raise InvalidAccessToken("token too large")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise InvalidAccessToken("malformed token") from exc
    if str(header.get("typ", "")).lower() not in {"at+jwt", "application/at+jwt"}:
        raise InvalidAccessToken("not an access token")
    kid = header.get("kid")
    found = await keys.verification_key(kid) if isinstance(kid, str) else None
    if found is None:
        raise InvalidAccessToken("unknown signing key")
    alg, public_key = found
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            public_key,
            algorithms=[alg],
            issuer=settings.issuer,
            audience=audience,
            options={
                "require": ["iss", "sub", "aud", "exp", "iat", "jti"],
                "verify_aud": audience is not None,
                # Time is checked below against the service's (injectable) clock.
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.InvalidTokenError as exc:
        raise InvalidAccessToken("token rejected") from exc
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp + LEEWAY_SECONDS < now.timestamp():
        raise InvalidAccessToken("token expired")
    return claims

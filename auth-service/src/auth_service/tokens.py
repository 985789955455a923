"""Access tokens (RFC 9068 JWTs) and refresh tokens (opaque to clients, tagged, stored as hashes).

Access tokens are signed here and verified by the verifier every edge uses
(:mod:`auth_service.verification`).

An access token names its user by an opaque id only: anyone holding it can read its payload.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from auth_service.config import Settings
from auth_service.keys import SigningMaterial, sign_jwt

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - the RFC 9068 media type, not a secret
MAX_SCOPE_LENGTH = 1024
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), joined by single spaces.
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+(?: [\x21\x23-\x5b\x5d-\x7e]+)*")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(16)}"


# --- refresh tokens ------------------------------------------------------------------------------
#
# A refresh token is ``<session id>.<seq>.<nonce>.<tag>``: the session and the place in its lineage
# it belongs to, 256 random bits, and ``tag = HMAC-SHA256(K, "<session id>.<seq>.<nonce>")``
# (base64url), K derived from the key-encryption key (:func:`derive_refresh_key`). So a dead token
# is recognised by its tag alone once its row is pruned, and nobody without K can name a session.
# Tokens issued before this format (43 random base64url characters, no dot) are "legacy": they are
# known by their stored hash only.

REFRESH_KEY_INFO: Final = b"gatepass/auth/refresh-token-tag/v1"
_SESSION_ID = re.compile(r"ses_[A-Za-z0-9_-]{1,64}")
_SEQ = re.compile(r"0|[1-9][0-9]{0,9}")  # canonical decimal only: one spelling per seq
_B64_256 = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 bytes, base64url without padding


@dataclass(frozen=True)
class RefreshTokenPlace:
    """The session and the lineage position a refresh token's verified tag vouches for."""

    session_id: str
    seq: int


class InvalidRefreshToken(Exception):
    """A refresh token in the current format that is malformed or carries a bad tag."""


def derive_refresh_key(kek: bytes) -> bytes:
    """The refresh-token tag key: HKDF-SHA256 from the KEK, bound to its one use. Never logged."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=REFRESH_KEY_INFO)
    return hkdf.derive(kek)


def _tag(key: bytes, session_id: str, seq: str, nonce: str) -> str:
    message = f"{session_id}.{seq}.{nonce}".encode("ascii")
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_refresh_token(key: bytes, session_id: str, seq: int) -> str:
    """A refresh token for place ``seq`` of ``session_id``: 256 random bits (the OS's CSPRNG) and
    the tag that vouches for the place; about 125 characters, URL-safe."""
    if _SESSION_ID.fullmatch(session_id) is None or seq < 0:
        raise ValueError("not a session id and lineage position")
    nonce = secrets.token_urlsafe(32)
    return f"{session_id}.{seq}.{nonce}.{_tag(key, session_id, str(seq), nonce)}"


def refresh_token_place(key: bytes, token: str) -> RefreshTokenPlace | None:
    """Where a refresh token belongs, its tag checked (in constant time); None for a legacy token.

    Raises :class:`InvalidRefreshToken` for a token in the current format (it has a dot) that is
    malformed or whose tag is not ours: such a token names nothing, so it can revoke nothing."""
    if "." not in token:
        return None
    parts = token.split(".")
    if len(parts) != 4:
        raise InvalidRefreshToken
    session_id, seq, nonce, tag = parts
    if (
        _SESSION_ID.fullmatch(session_id) is None
        or _SEQ.fullmatch(seq) is None
        or _B64_256.fullmatch(nonce) is None
        or _B64_256.fullmatch(tag) is None
    ):
        raise InvalidRefreshToken
    if not hmac.compare_digest(_tag(key, session_id, seq, nonce), tag):
        raise InvalidRefreshToken
    return RefreshTokenPlace(session_id, int(seq))


def hash_refresh_token(token: str) -> str:
    # A fast hash is right here: the token has 256 bits of entropy, nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


# What OpenID Connect's scopes ask for: an ID token and /userinfo (``openid``), the email there.
# No role grants them; a sign-in through an app asks for them (auth_service.authorization).
IDENTITY_SCOPES: Final = frozenset({"openid", "email"})


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
    """What an access token says. ``subject`` is a user id, or a client id for a service's own
    token (no session then); ``act`` names the service acting for the subject (RFC 8693 §4.1).

    ``ttl`` overrides the settings' access-token lifetime; ``not_after`` caps ``exp`` (an
    exchanged token never outlives the token it was exchanged for)."""

    subject: str
    session_id: str | None
    client_id: str
    scopes: list[str]
    audience: list[str]
    act: dict[str, Any] | None = None
    ttl: int | None = None
    not_after: int | None = None


@dataclass(frozen=True)
class SignedAccessToken:
    token: str = field(repr=False)
    expires_in: int


def sign_access_token(
    key: SigningMaterial, settings: Settings, grant: AccessGrant, now: datetime
) -> str:
    """Sign with ``key``, fetched by the caller *before* it opens a database transaction (a
    snapshot reload needs a connection of its own, and must never wait on one held by itself)."""
    return issue_access_token(key, settings, grant, now).token


def issue_access_token(
    key: SigningMaterial, settings: Settings, grant: AccessGrant, now: datetime
) -> SignedAccessToken:
    """:func:`sign_access_token`, with the token's lifetime in seconds (``expires_in``)."""
    iat = int(now.timestamp())
    exp = iat + (grant.ttl if grant.ttl is not None else settings.access_token_ttl)
    if grant.not_after is not None:
        exp = min(exp, grant.not_after)
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "sub": grant.subject,
        "aud": grant.audience[0] if len(grant.audience) == 1 else grant.audience,
        "exp": exp,
        "iat": iat,
        "jti": secrets.token_urlsafe(16),
        "client_id": grant.client_id,
        "scope": " ".join(grant.scopes),
    }
    if grant.session_id:
        claims["sid"] = grant.session_id
    if grant.act is not None:
        claims["act"] = grant.act
    token = sign_jwt(key, claims, typ=ACCESS_TOKEN_TYPE)
    return SignedAccessToken(token, exp - iat)

"""OpenID Connect ID tokens: signed here for the client that redeemed a code, and read back when
a client names one as ``id_token_hint`` at RP-initiated logout.

An ID token (OpenID Connect Core §2) is for the client (``aud`` = its id), not for a service: it
says who signed in (``sub``), when the password was checked (``auth_time``), in which session
(``sid``, the session the code's redemption opened: logout ends it), and binds the answer to the
request (``nonce``) and to its access token (``at_hash``, §3.3.2.11). It is signed with the
ID-token key (``svc.keys.signing_key("id")``, RS256 by default) and carries ``typ: JWT``, where
an access token carries ``at+jwt``: neither passes for the other (RFC 9068 §4, RFC 8725 §3.11).

No web framework here: the routes (``routes/oauth.py``, ``routes/oidc.py``) call these.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import jwt

from auth_service.config import Settings
from auth_service.keys import SigningMaterial, sign_jwt
from auth_service.keys.signing import JWS
from auth_service.state import Services

log = logging.getLogger("gatepass.auth.idtokens")

ID_TOKEN_TYPE: Final = "JWT"  # noqa: S105 - a media type, not a secret
MAX_HINT_BYTES: Final = 8 * 1024
# The hash of at_hash, by signing algorithm (the hash the algorithm uses; SHA-512 for Ed25519,
# as the OpenID Foundation's errata for EdDSA say).
_HASHES: Final = {"ES256": "sha256", "RS256": "sha256", "PS256": "sha256", "Ed25519": "sha512"}


@dataclass(frozen=True)
class IdTokenHint:
    """What an ``id_token_hint`` says, its signature checked (its expiry not: RP-initiated logout
    names the ID token the client holds, which may well have expired)."""

    client_id: str
    subject: str
    session_id: str | None


def token_hash(value: str, alg: str) -> str:
    """``at_hash`` (OpenID Connect Core §3.1.3.6): the left half of the hash of the ASCII token,
    base64url without padding."""
    digest = hashlib.new(_HASHES.get(alg, "sha256"), value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def sign_id_token(
    key: SigningMaterial,
    settings: Settings,
    *,
    subject: str,
    audience: str,
    session_id: str,
    auth_time: datetime,
    nonce: str | None,
    now: datetime,
    access_token: str | None = None,
) -> str:
    """An ID token for ``audience`` (a client id), living ``settings.id_token_ttl`` seconds."""
    iat = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "sub": subject,
        "aud": audience,
        "azp": audience,
        "exp": iat + settings.id_token_ttl,
        "iat": iat,
        "auth_time": int(auth_time.timestamp()),
        "sid": session_id,
    }
    if nonce is not None:
        claims["nonce"] = nonce
    if access_token is not None:
        claims["at_hash"] = token_hash(access_token, key.alg)
    return sign_jwt(key, claims, typ=ID_TOKEN_TYPE)


async def read_id_token_hint(svc: Services, token: str) -> IdTokenHint | None:
    """The client, user and session an ID token this service signed names; None when it is not
    one (malformed, another issuer, a key we do not publish, a bad signature, an access token).
    Its expiry is not checked; why a hint was refused is logged, never the hint."""
    if not token or len(token.encode()) > MAX_HINT_BYTES:
        return None
    try:
        header = JWS.get_unverified_header(token)
    except jwt.PyJWTError:
        return None
    kid, alg = header.get("kid"), header.get("alg")
    if header.get("typ") != ID_TOKEN_TYPE or not isinstance(kid, str) or "crit" in header:
        return None
    published = await svc.keys.verification_key(kid)
    if published is None or published[0] != alg:
        log.info("id_token_hint refused", extra={"reason": "key"})
        return None
    try:
        verified = JWS.decode_complete(token, published[1], algorithms=[published[0]])
        claims = json.loads(verified["payload"])
    except (jwt.PyJWTError, ValueError):
        log.info("id_token_hint refused", extra={"reason": "signature"})
        return None
    if not isinstance(claims, dict) or claims.get("iss") != svc.settings.issuer:
        log.info("id_token_hint refused", extra={"reason": "issuer"})
        return None
    return _hint(claims)


def _hint(claims: dict[str, Any]) -> IdTokenHint | None:
    audience = claims.get("aud")
    if isinstance(audience, list):
        audience = audience[0] if len(audience) == 1 else claims.get("azp")
    subject, sid = claims.get("sub"), claims.get("sid")
    if not isinstance(audience, str) or not isinstance(subject, str):
        return None
    return IdTokenHint(audience, subject, sid if isinstance(sid, str) else None)

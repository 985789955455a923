"""Client authentication (RFC 6749 §2.3) for the token and introspection endpoints.

Confidential clients are configured, each an id and a secret: ``GATEPASS_AUTH_CLIENTS`` may use
the token endpoint, ``GATEPASS_AUTH_INTROSPECTION_CLIENTS`` may use it and introspect. A client
authenticates with one of:

- HTTP Basic (``client_secret_basic``): id and secret are each form-encoded
  (``application/x-www-form-urlencoded``, so ``+`` is a space) before the Basic encoding,
  RFC 6749 §2.3.1;
- ``client_id`` and ``client_secret`` in the form body (``client_secret_post``).

Never both (RFC 6749 §2.3). Credentials that are sent must be right: a wrong secret, an unknown
client or a malformed header is a 401 ``invalid_client`` with a ``WWW-Authenticate: Basic``
challenge, never a fall-back to acting as a public client. A public client (no secret) only names
itself with ``client_id``; naming a confidential client that way is refused, since anyone could.

Registered clients (``registry.py``) authenticate as they were registered: with a secret the
service made (``client_secret_basic``, which takes either form above; only its SHA-256 is kept),
or with a signed assertion (``private_key_jwt``, RFC 7523 §2.2 and §3: :func:`_assertion_caller`),
or not at all (a public app, ``none``). A disabled client fails as a wrong secret does.

Failed authentications are throttled per address and per client id (``throttle.py``), the secret
being compared inside the transaction that counts the failure: guesses get 429 once the allowance
is used up, however many run at once. Every failure is the same 401 ``invalid_client``, whatever
went wrong: the log line and the caller learn nothing more.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import unquote_plus

import jwt
from fastapi import Request
from pydantic import SecretStr
from sqlalchemy.exc import IntegrityError

from auth_service import registry
from auth_service.errors import OAuthError
from auth_service.keys.signing import JWS
from auth_service.metrics import Metrics
from auth_service.models import ClientAssertion
from auth_service.registry import ALGS_BY_KTY, RegisteredClient
from auth_service.state import Services
from auth_service.throttle import LoginThrottler, Throttled

log = logging.getLogger("gatepass.auth.clients")

CHALLENGE = {"WWW-Authenticate": 'Basic realm="gatepass"'}
MAX_CREDENTIAL_LENGTH = 512

# private_key_jwt (RFC 7523)
ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_BYTES: Final = 8 * 1024
MAX_ASSERTION_LIFETIME: Final = 300  # seconds an assertion is good for, from its iat or now
ASSERTION_LEEWAY: Final = 30  # seconds of clock skew allowed either way
MAX_JTI_LENGTH: Final = 256
ASSERTION_ALGS: Final = frozenset().union(*ALGS_BY_KTY.values())
# The endpoints an assertion may be addressed to, after the issuer itself.
ASSERTION_AUDIENCE_PATHS: Final = ("/token", "/revoke", "/introspect")


@dataclass(frozen=True)
class Credentials:
    client_id: str
    secret: str


def invalid_client() -> OAuthError:
    return OAuthError(
        "invalid_client", "Client authentication failed.", status=401, headers=dict(CHALLENGE)
    )


def _throttled(retry_after: int) -> OAuthError:
    return OAuthError(
        "invalid_client",
        "Too many failed client authentications; try again later.",
        status=429,
        headers={**CHALLENGE, "Retry-After": str(retry_after)},
    )


def _credentials(client_id: str, secret: str) -> Credentials:
    if not client_id or max(len(client_id), len(secret)) > MAX_CREDENTIAL_LENGTH:
        raise invalid_client()
    return Credentials(client_id, secret)


def basic_credentials(request: Request) -> Credentials | None:
    """The HTTP Basic credentials, or None without an Authorization header; malformed: 401."""
    values = request.headers.getlist("authorization")
    if not values:
        return None
    scheme, _, value = values[0].partition(" ")
    if len(values) > 1 or scheme.lower() != "basic" or not value.strip():
        raise invalid_client()
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise invalid_client() from exc
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise invalid_client()
    return _credentials(unquote_plus(client_id), unquote_plus(secret))


def form_credentials(form: Mapping[str, str]) -> Credentials | None:
    """``client_id`` + ``client_secret`` from the form body, or None without a secret."""
    if "client_secret" not in form:
        return None
    return _credentials(form.get("client_id", ""), form["client_secret"])


async def authenticate(
    throttle: LoginThrottler,
    metrics: Metrics,
    creds: Credentials,
    ip: str,
    clients: Mapping[str, SecretStr],
) -> str:
    """The id of the client in ``clients`` whose secret ``creds`` carries; else 401 (or 429).
    Failures are counted by ``throttle``; every outcome in ``metrics``."""
    expected = clients.get(creds.client_id)
    if expected is None:  # the same comparison, bound to fail: an unknown id
        check = _same_text(creds.secret, creds.secret + "\x00")
        return await _settle(throttle, metrics, None, ip, check)
    check = _same_text(creds.secret, expected.get_secret_value())
    return await _settle(throttle, metrics, creds.client_id, ip, check)


async def _authenticate_registered(
    throttle: LoginThrottler,
    metrics: Metrics,
    creds: Credentials,
    ip: str,
    *,
    client: RegisteredClient,
    secret_hash: str | None,
) -> str:
    """:func:`authenticate` for a registered client: the secret's SHA-256 against the stored
    one, under the same throttle. A client of another method, or disabled, fails alike."""
    usable = (
        secret_hash is not None
        and client.auth_method == "client_secret_basic"
        and not client.disabled
    )
    given = registry.hash_secret(creds.secret)
    wanted = secret_hash if usable and secret_hash is not None else given + "\x00"
    passed = _same_text(given, wanted)()
    return await _settle_registered(throttle, metrics, client.client_id, ip, passed=passed)


def _same_text(given: str, wanted: str) -> Callable[[], bool]:
    return lambda: hmac.compare_digest(given.encode(), wanted.encode())


async def _settle(
    throttle: LoginThrottler,
    metrics: Metrics,
    known: str | None,
    ip: str,
    check: Callable[[], bool],
) -> str:
    """Run ``check`` under the client's (``known``: None for an unknown id) and the address's
    failure counters; ``known`` when it passes, else 401 (or 429), every outcome counted."""
    try:
        ok = await throttle.check_client(known, ip, check)
    except Throttled as exc:
        metrics.client_authentications.labels("throttled").inc()
        raise _throttled(exc.retry_after) from exc
    if not ok or known is None:
        metrics.client_authentications.labels("invalid").inc()
        raise invalid_client()
    metrics.client_authentications.labels("ok").inc()
    return known


async def _settle_registered(
    throttle: LoginThrottler, metrics: Metrics, known: str | None, ip: str, *, passed: bool
) -> str:
    """:func:`_settle` for a registered client's credentials, which nobody can guess (a 256-bit
    secret the service made, or a signature): only a failure is counted, and answered 429 once
    the allowance is used up. A success costs no throttle transaction, and a stranger's failures
    in a client's name cannot lock the client out."""
    if passed and known is not None:
        metrics.client_authentications.labels("ok").inc()
        return known
    return await _settle(throttle, metrics, known, ip, lambda: False)


@dataclass(frozen=True)
class TokenCaller:
    """Who calls the token endpoint (or ``/revoke``)."""

    client_id: str | None  # None: the request names no client
    registered: RegisteredClient | None  # the registry's record, when the client is registered
    authenticated: bool  # proved by a secret or an assertion


async def token_caller(
    svc: Services, request: Request, form: Mapping[str, str], ip: str
) -> TokenCaller:
    """Who is calling: a client that authenticated (a secret, in the header or the form, or an
    assertion), a public client that names itself with ``client_id``, or nobody named. One
    method at most (else 400 ``invalid_request``); a client that must authenticate and does not,
    or fails to, or is disabled: 401 ``invalid_client``."""
    basic = basic_credentials(request)
    posted = form_credentials(form)
    asserted = "client_assertion" in form or "client_assertion_type" in form
    if sum((basic is not None, posted is not None, asserted)) > 1:
        raise OAuthError("invalid_request", "Use one client authentication method, not two.")
    named = form.get("client_id") or None
    if asserted:
        return await _assertion_caller(svc, form, named, ip)
    creds = basic or posted
    if creds is None:
        return await _public_caller(svc, named)
    if named is not None and named != creds.client_id:
        raise invalid_client()
    stored = await svc.client_cache.credentials(svc.sessions, creds.client_id)
    if stored is None:
        client_id = await authenticate(
            svc.throttle, svc.metrics, creds, ip, svc.settings.confidential_clients
        )
        return TokenCaller(client_id, None, True)
    client, secret_hash = stored
    await _authenticate_registered(
        svc.throttle, svc.metrics, creds, ip, client=client, secret_hash=secret_hash
    )
    return TokenCaller(client.client_id, client, True)


async def _public_caller(svc: Services, named: str | None) -> TokenCaller:
    """A request without credentials: it names a public client, or none. A confidential client
    must authenticate (RFC 6749 §3.2.1); a disabled one cannot be named."""
    if named is None:
        return TokenCaller(None, None, False)
    if named in svc.settings.confidential_clients or named.startswith(registry.USER_ID_PREFIX):
        raise invalid_client()
    client = await svc.client_cache.find(svc.sessions, named)
    if client is not None and (client.confidential or client.disabled):
        raise invalid_client()
    return TokenCaller(named, client, False)


async def token_client(
    svc: Services, request: Request, form: Mapping[str, str], ip: str
) -> str | None:
    """Who is calling the token endpoint: an authenticated client's id, a public client's
    ``client_id``, or None when the request names no client (:func:`token_caller`)."""
    return (await token_caller(svc, request, form, ip)).client_id


# --- private_key_jwt ------------------------------------------------------------------------------


async def _assertion_caller(
    svc: Services, form: Mapping[str, str], named: str | None, ip: str
) -> TokenCaller:
    """A client that authenticates with a signed assertion (RFC 7523 §2.2): the assertion is
    checked (:func:`_verify`), then counted as a secret check is, so that failures are
    throttled alike. The log says why one was refused; the caller is told nothing more."""
    client: RegisteredClient | None = None
    refusal: str | None = None
    try:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise _Refused("assertion type")
        assertion = _Assertion.read(form.get("client_assertion", ""))
        if named is not None and named != assertion.client_id:
            raise _Refused("client_id differs")
        client = await svc.client_cache.find(svc.sessions, assertion.client_id)
        if client is None or client.auth_method != "private_key_jwt" or client.disabled:
            raise _Refused("not an enabled private_key_jwt client")
        await _verify(svc, client, assertion)
    except _Refused as refused:
        refusal = refused.reason
    known = client.client_id if client is not None else None
    if refusal is not None:
        log.info("client assertion refused", extra={"client_id": known, "reason": refusal})
    client_id = await _settle_registered(
        svc.throttle, svc.metrics, known, ip, passed=refusal is None
    )
    return TokenCaller(client_id, client, True)


class _Refused(Exception):
    """An assertion refused; ``reason`` is for the log (a fixed phrase, never a claim's value)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _Assertion:
    """An assertion's parts, read before its signature is checked."""

    text: str
    header: dict[str, Any]
    claims: dict[str, Any]
    client_id: str  # its iss and sub, which must be equal (RFC 7523 §3)

    @classmethod
    def read(cls, text: str) -> _Assertion:
        if not text or len(text.encode()) > MAX_ASSERTION_BYTES:
            raise _Refused("size")
        try:
            parsed = jwt.PyJWS().decode_complete(text, options={"verify_signature": False})
            claims = json.loads(parsed["payload"])
        except (jwt.PyJWTError, ValueError, UnicodeDecodeError):
            raise _Refused("malformed") from None
        header = parsed["header"]
        if not isinstance(claims, dict) or not isinstance(header, dict):
            raise _Refused("malformed")
        iss, sub = claims.get("iss"), claims.get("sub")
        if not isinstance(sub, str) or not sub or iss != sub:
            raise _Refused("iss and sub")
        return cls(text, header, claims, sub)


async def _verify(svc: Services, client: RegisteredClient, assertion: _Assertion) -> None:
    """Check the assertion's signature with one of the client's keys, then its claims, then
    remember its ``jti`` until it expires (a second use is a replay)."""
    alg, kid = assertion.header.get("alg"), assertion.header.get("kid")
    if alg not in ASSERTION_ALGS or "crit" in assertion.header:
        raise _Refused("alg")
    if kid is not None and not isinstance(kid, str):
        raise _Refused("kid")
    keys = await svc.client_keys.keys(client, kid)
    if not any(_signed_by(assertion.text, key, alg) for key in keys):
        raise _Refused("signature")
    expires = _check_claims(assertion.claims, svc.settings.issuer, svc.clock())
    await _remember(svc, client.client_id, assertion.claims["jti"], expires)


def _signed_by(assertion: str, key: Mapping[str, Any], alg: str) -> bool:
    kty = key.get("kty")
    if not isinstance(kty, str) or alg not in ALGS_BY_KTY.get(kty, ()):
        return False
    if key.get("alg", alg) != alg:
        return False
    try:
        public = jwt.PyJWK(dict(key), algorithm=registry.pyjwt_alg(alg)).key
        JWS.decode_complete(assertion, key=public, algorithms=[alg])
    except (jwt.PyJWTError, ValueError, TypeError):
        return False
    return True


def _check_claims(claims: Mapping[str, Any], issuer: str, now: datetime) -> datetime:
    """RFC 7523 §3: the audience is this issuer (or one of its endpoints), ``exp`` is required
    and near, ``nbf`` and ``iat`` are not ahead; ``jti`` is required. Its expiry, leeway added."""
    audiences = claims.get("aud")
    named = [audiences] if isinstance(audiences, str) else audiences
    accepted = {issuer, *(issuer + path for path in ASSERTION_AUDIENCE_PATHS)}
    if not isinstance(named, list) or not accepted.intersection(
        aud for aud in named if isinstance(aud, str)
    ):
        raise _Refused("aud")
    clock = now.timestamp()
    exp = _number(claims, "exp")
    if exp is None or exp + ASSERTION_LEEWAY <= clock:
        raise _Refused("expired")
    for claim in ("nbf", "iat"):
        moment = _number(claims, claim)
        if claims.get(claim) is not None and (moment is None or moment > clock + ASSERTION_LEEWAY):
            raise _Refused(f"{claim} ahead")
    # Short-lived whatever its exp says: an assertion is good for MAX_ASSERTION_LIFETIME from
    # its iat (clients such as authlib set exp an hour ahead), or until an exp that near.
    iat = _number(claims, "iat")
    ends = exp if iat is None else min(exp, iat + MAX_ASSERTION_LIFETIME)
    if ends + ASSERTION_LEEWAY <= clock:
        raise _Refused("too old")
    if ends > clock + MAX_ASSERTION_LIFETIME + ASSERTION_LEEWAY:
        raise _Refused("lives too long")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 1 <= len(jti) <= MAX_JTI_LENGTH:
        raise _Refused("jti")
    return datetime.fromtimestamp(ends + ASSERTION_LEEWAY, UTC)


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    """A time claim's seconds; None unless a finite number (JSON as Python reads it has NaN)."""
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an integer too large for a float (JSON allows 10**400)
        return None
    return float(value) if finite else None


def assertion_key(client_id: str, jti: str) -> str:
    """The row an assertion's ``jti`` is remembered by: no two clients' jtis collide."""
    return hashlib.sha256(f"{client_id}\x00{jti}".encode()).hexdigest()


async def _remember(svc: Services, client_id: str, jti: str, expires: datetime) -> None:
    """Insert the jti's row, committed: the primary key refuses a second use on any replica
    (on PostgreSQL a concurrent insert of the same key waits for the first, then fails)."""
    async with svc.sessions() as db:
        db.add(
            ClientAssertion(
                id=assertion_key(client_id, jti), client_id=client_id, expires_at=expires
            )
        )
        try:
            await db.commit()
        except IntegrityError:
            await db.rollback()
            raise _Refused("replayed jti") from None


async def login_client(svc: Services, request: Request, client_id: str | None, ip: str) -> str:
    """The client a password login opens its session for: the default or a public client named
    in the body, or a confidential client that authenticated with HTTP Basic. Anyone could name
    a confidential client, and its id would then stand in the access token's ``client_id``.

    Never an app (``kind`` ``app``): an app signs users in through ``/authorize``, and gets only
    the scopes it is registered for there; a password login would hand it every scope of the
    user under its own id (400 ``unauthorized_client``, before the password is checked)."""
    if client_id is None:
        return svc.settings.default_client_id
    if client_id.startswith(registry.USER_ID_PREFIX):
        raise invalid_client()  # never a user id: a token's sub equal to its client_id is a service
    stored = await svc.client_cache.credentials(svc.sessions, client_id)
    if stored is not None:
        client, secret_hash = stored
        if client.kind == "app":
            raise OAuthError(
                "unauthorized_client",
                "An app signs users in through /authorize, not with their password.",
            )
        if not client.confidential and not client.disabled:
            return client_id
        creds = basic_credentials(request)
        if creds is None or creds.client_id != client_id:
            raise invalid_client()
        return await _authenticate_registered(
            svc.throttle, svc.metrics, creds, ip, client=client, secret_hash=secret_hash
        )
    if client_id not in svc.settings.confidential_clients:
        return client_id
    creds = basic_credentials(request)
    if creds is None or creds.client_id != client_id:
        raise invalid_client()
    return await authenticate(
        svc.throttle, svc.metrics, creds, ip, svc.settings.confidential_clients
    )


async def introspection_client(svc: Services, request: Request, ip: str) -> str:
    """The introspecting client, authenticated with HTTP Basic (RFC 7662 §2.1)."""
    creds = basic_credentials(request)
    if creds is None:
        svc.metrics.client_authentications.labels("missing").inc()
        raise invalid_client()
    return await authenticate(
        svc.throttle, svc.metrics, creds, ip, svc.settings.introspection_clients
    )

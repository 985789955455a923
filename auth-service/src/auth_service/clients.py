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

Failed authentications are throttled per address and per client id (``throttle.py``), the secret
being compared inside the transaction that counts the failure: guesses get 429 once the allowance
is used up, however many run at once.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote_plus

from fastapi import Request
from pydantic import SecretStr

from auth_service.errors import OAuthError
from auth_service.metrics import Metrics
from auth_service.state import Services
from auth_service.throttle import LoginThrottler, Throttled

CHALLENGE = {"WWW-Authenticate": 'Basic realm="gatepass"'}
MAX_CREDENTIAL_LENGTH = 512


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

    def secret_matches() -> bool:
        wanted = expected.get_secret_value() if expected is not None else creds.secret + "\x00"
        same = hmac.compare_digest(creds.secret.encode(), wanted.encode())
        return same and expected is not None

    known = creds.client_id if expected is not None else None
    try:
        ok = await throttle.check_client(known, ip, secret_matches)
    except Throttled as exc:
        metrics.client_authentications.labels("throttled").inc()
        raise _throttled(exc.retry_after) from exc
    if not ok:
        metrics.client_authentications.labels("invalid").inc()
        raise invalid_client()
    metrics.client_authentications.labels("ok").inc()
    return creds.client_id


async def token_client(
    svc: Services, request: Request, form: Mapping[str, str], ip: str
) -> str | None:
    """Who is calling the token endpoint: an authenticated client's id, a public client's
    ``client_id``, or None when the request names no client."""
    basic = basic_credentials(request)
    posted = form_credentials(form)
    if basic is not None and posted is not None:
        raise OAuthError("invalid_request", "Use one client authentication method, not two.")
    creds = basic or posted
    named = form.get("client_id") or None
    if creds is None:
        if named is not None and named in svc.settings.confidential_clients:
            raise invalid_client()  # RFC 6749 §3.2.1: a confidential client must authenticate
        return named
    client_id = await authenticate(
        svc.throttle, svc.metrics, creds, ip, svc.settings.confidential_clients
    )
    if named is not None and named != client_id:
        raise invalid_client()
    return client_id


async def login_client(svc: Services, request: Request, client_id: str | None, ip: str) -> str:
    """The client a password login opens its session for: the default or a public client named
    in the body, or a confidential client that authenticated with HTTP Basic. Anyone could name
    a confidential client, and its id would then stand in the access token's ``client_id``."""
    if client_id is None:
        return svc.settings.default_client_id
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

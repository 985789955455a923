"""The OAuth 2.0 endpoints: ``/token`` (RFC 6749) and ``/introspect`` (RFC 7662).

Both take ``application/x-www-form-urlencoded`` bodies and answer errors as RFC 6749 §5.2 objects.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any
from urllib.parse import parse_qsl, unquote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from auth_service import devices, revocation
from auth_service.errors import NO_STORE, OAuthError
from auth_service.security import client_ip
from auth_service.state import Services, Svc
from auth_service.tokens import InvalidAccessToken, verify_access_token

router = APIRouter(tags=["oauth"])

FORM = "application/x-www-form-urlencoded"
MAX_FIELDS = 20


async def read_form(request: Request) -> dict[str, str]:
    """Parse a form body strictly: right media type, UTF-8, each parameter at most once."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != FORM:
        raise OAuthError("invalid_request", f"The body must be {FORM}.")
    try:
        pairs = parse_qsl(
            (await request.body()).decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise OAuthError("invalid_request", "The form body could not be parsed.") from exc
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise OAuthError("invalid_request", f"The parameter {name!r} is repeated.")
        form[name] = value
    return form


def _required(form: dict[str, str], name: str) -> str:
    value = form.get(name, "")
    if not value:
        raise OAuthError("invalid_request", f"The parameter {name!r} is missing.")
    return value


@router.post("/token")
async def token(request: Request, svc: Svc) -> JSONResponse:
    form = await read_form(request)
    grant_type = _required(form, "grant_type")
    if grant_type != "refresh_token":
        raise OAuthError(
            "unsupported_grant_type", f"The grant type {grant_type!r} is not supported."
        )
    refresh_token = _required(form, "refresh_token")
    if len(refresh_token) > 512:
        raise OAuthError("invalid_grant", "The refresh token is not valid.")
    pair = await devices.refresh(
        svc, refresh_token, client_id=form.get("client_id") or None, ip=client_ip(request)
    )
    body = {
        "access_token": pair.access_token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
        "refresh_token": pair.refresh_token,
        "session_id": pair.session_id,
        "scope": pair.scope,
    }
    return JSONResponse(body, headers=NO_STORE)


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    return unquote(client_id), unquote(secret)


def authenticate_client(svc: Services, request: Request) -> str:
    """HTTP Basic client authentication (RFC 6749 §2.3.1) against configured clients."""
    creds = _basic_credentials(request)
    expected = svc.settings.introspection_clients.get(creds[0]) if creds else None
    if (
        creds is None
        or expected is None
        or not hmac.compare_digest(creds[1].encode(), expected.get_secret_value().encode())
    ):
        raise OAuthError(
            "invalid_client",
            "Client authentication failed.",
            status=401,
            headers={"WWW-Authenticate": 'Basic realm="gatepass"'},
        )
    return creds[0]


INTROSPECTED = ("iss", "sub", "aud", "exp", "iat", "jti", "sid", "client_id", "scope")


@router.post("/introspect")
async def introspect(request: Request, svc: Svc) -> JSONResponse:
    authenticate_client(svc, request)
    form = await read_form(request)
    token = _required(form, "token")
    now = svc.clock()
    try:
        claims = await verify_access_token(svc.keys, svc.settings, token, now, audience=None)
    except InvalidAccessToken:
        return JSONResponse({"active": False}, headers=NO_STORE)
    async with svc.sessions() as db:
        if await revocation.is_revoked(db, claims, now):
            return JSONResponse({"active": False}, headers=NO_STORE)
    body: dict[str, Any] = {"active": True, "token_type": "Bearer"}
    body.update({name: claims[name] for name in INTROSPECTED if name in claims})
    return JSONResponse(body, headers=NO_STORE)

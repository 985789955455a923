"""The authorization code flow (RFC 6749 §4.1) with PKCE (RFC 7636), as OpenID Connect uses it:
the authorization request read and checked, codes issued to a signed-in browser, and codes
redeemed at the token endpoint.

- **The request.** ``response_type=code`` only; a registered, enabled ``app`` client; a
  ``redirect_uri`` equal, character for character, to one the client registered. Until both are
  known good nothing is sent anywhere: a bad client or redirect URI is :class:`PageError` (the
  route shows a page). After, every refusal goes back to the redirect URI (:class:`RedirectError`)
  with ``state`` and ``iss`` (RFC 9207). PKCE is required, ``S256`` only (``plain`` would send
  the verifier itself through the browser).
- **Signing in.** A browser without a session, or with one older than ``max_age``, or asked to
  sign in again (``prompt=login``), goes to the hosted login page, which comes back to the same
  request with ``prompt=login`` dropped and a marker (``auth_after``: a time in milliseconds and
  an HMAC over it and the whole request: every parameter but the marker, ``prompt=login``
  dropped): only a sign-in after that time counts, and it counts as fresh (``max_age`` is met by
  the sign-in it asked for, however long the login took). The marker fits that one request:
  carried over to a later one of the same app (another ``state``), it would let a sign-in of
  minutes ago answer that request's ``prompt=login`` or ``max_age``. A marker that is not ours,
  is another request's or is older than :data:`AUTH_AFTER_WINDOW` seconds asks for a sign-in
  from now on: a marker can make a request stricter, never laxer. ``prompt=none`` never shows
  a page: ``login_required`` instead.
- **Codes.** 256 random bits, kept as their SHA-256 only, good for
  ``settings.authorization_code_ttl`` seconds, bound to the client, the redirect URI, the PKCE
  challenge, the nonce, the sign-in (its session and its time), the scope and the audiences.
  Single use: the first redemption marks the code used (a conditional UPDATE: of two racing
  redemptions exactly one wins); a code presented again is ``invalid_grant`` and the session the
  first redemption opened is revoked (RFC 6749 §4.1.2), through the revocation feed to the edges.
  A redemption racing with a replay loses too: the replay poisons the code, and the redemption
  that finds it poisoned revokes what it just opened.
- **Redemption** opens a session for the client (``devices.open_session``), which keeps the
  code's scope: its tokens name the client's audiences and ``/userinfo``'s own
  (:func:`app_token_audiences`); their scope is the requested one within both the user's roles
  and the client's registered scopes (``openid`` and ``email`` kept), and an ID token comes with
  it when ``openid`` was asked for (:mod:`auth_service.idtokens`).

No web framework here: ``routes/oidc.py`` and ``routes/oauth.py`` read the requests and answer.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service import clients, devices, grants, idtokens, revocation
from auth_service.clients import TokenCaller
from auth_service.config import Settings
from auth_service.errors import NotFoundError, OAuthError
from auth_service.models import AuthorizationCode, User
from auth_service.models import Session as DeviceSession
from auth_service.registry import RegisteredClient
from auth_service.state import Services
from auth_service.tokens import IDENTITY_SCOPES, parse_scope, scopes_for

log = logging.getLogger("gatepass.auth.authorization")

AUTHORIZATION_CODE: Final = "authorization_code"
CODE_BYTES: Final = 32  # 256 bits
# RFC 7636 §4.1: 43 to 128 unreserved characters; §4.2: S256 is 32 bytes, base64url, 43 long.
_VERIFIER: Final = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_CHALLENGE: Final = re.compile(r"[A-Za-z0-9_-]{43}")
_CODE: Final = re.compile(r"[A-Za-z0-9_-]{43}")
PROMPTS: Final = frozenset({"none", "login"})
# Accepted and satisfied as they are: there is no account chooser, and no consent screen (the
# apps are the operator's own, registered by the operator).
SATISFIED_PROMPTS: Final = frozenset({"consent", "select_account"})
STATE_MAX: Final = 1024
NONCE_MAX: Final = 512
MAX_AGE_DIGITS: Final = 10
MARKER_DIGITS: Final = 13  # milliseconds since the epoch
AUTH_AFTER: Final = "auth_after"
AUTH_AFTER_WINDOW: Final = 600  # seconds a sign-in marker is good for
AUTH_AFTER_KEY_INFO: Final = b"gatepass/auth/authorize-sign-in-marker/v1"
REPLAYED: Final = "replayed"  # issued_session_id of a code presented again before it issued
RETURN_TO_MAX: Final = 4096


class PageError(Exception):
    """A request that cannot be answered at its redirect URI (the client or the URI itself is
    not known good): shown to the person as a page, never a redirect. ``message`` is fixed
    text, never what was sent."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RedirectError(Exception):
    """A refusal the client learns at its redirect URI (RFC 6749 §4.1.2.1)."""

    def __init__(
        self, error: str, description: str, *, redirect_uri: str, state: str | None
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.redirect_uri = redirect_uri
        self.state = state


@dataclass(frozen=True)
class AuthorizationRequest:
    """A checked authorization request."""

    client: RegisteredClient
    redirect_uri: str
    scopes: frozenset[str] | None  # None: no ``scope`` parameter (all the app may hold)
    state: str | None
    nonce: str | None
    code_challenge: str
    prompt: frozenset[str]
    max_age: int | None
    auth_after: int | None  # a verified sign-in marker's time, in milliseconds
    params: Mapping[str, str]  # as received: the request the login page comes back to

    def refuse(self, error: str, description: str) -> RedirectError:
        return RedirectError(error, description, redirect_uri=self.redirect_uri, state=self.state)


# --- reading the request -------------------------------------------------------------------------


def single_params(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The request's parameters, each at most once (OpenID Connect Core §3.1.2.1); an empty one
    counts as absent (RFC 6749 §3.1)."""
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise PageError("The request repeats a parameter.")
        params[name] = value
    return {name: value for name, value in params.items() if value != ""}


async def parse_request(svc: Services, params: Mapping[str, str]) -> AuthorizationRequest:
    """Check an authorization request: :class:`PageError` until the client and its redirect URI
    are known good, :class:`RedirectError` after."""
    client = await _app_client(svc, params.get("client_id"))
    redirect_uri = params.get("redirect_uri")
    if redirect_uri is None:
        raise PageError("The request names no redirect URI.")
    if redirect_uri not in client.redirect_uris:
        raise PageError("The redirect URI is not one this application registered.")
    state = params.get("state")
    if state is not None and len(state) > STATE_MAX:
        raise RedirectError(
            "invalid_request", "The state is too long.", redirect_uri=redirect_uri, state=None
        )
    draft = AuthorizationRequest(
        client, redirect_uri, None, state, None, "", frozenset(), None, None, params
    )
    for name, error in (
        ("request", "request_not_supported"),
        ("request_uri", "request_uri_not_supported"),
    ):
        if name in params:
            raise draft.refuse(error, f"The {name} parameter is not supported.")
    response_type = params.get("response_type")
    if response_type is None:
        raise draft.refuse("invalid_request", "The parameter response_type is missing.")
    if response_type != "code":
        raise draft.refuse("unsupported_response_type", "Only response_type=code is supported.")
    if params.get("response_mode", "query") != "query":
        raise draft.refuse("invalid_request", "Only response_mode=query is supported.")
    return AuthorizationRequest(
        client,
        redirect_uri,
        _scopes(draft, params.get("scope")),
        state,
        _nonce(draft, params.get("nonce")),
        _challenge(draft, params),
        _prompt(draft, params.get("prompt")),
        _max_age(draft, params.get("max_age")),
        _auth_after(svc, draft, params.get(AUTH_AFTER)),
        params,
    )


async def _app_client(svc: Services, client_id: str | None) -> RegisteredClient:
    if client_id is None:
        raise PageError("The request names no application (client_id).")
    client = await svc.client_cache.find(svc.sessions, client_id)
    if client is None or client.kind != "app" or client.disabled:
        raise PageError("The application is not registered here, or it is disabled.")
    if not client.redirect_uris:
        raise PageError("The application has registered no redirect URI.")
    return client


def _scopes(draft: AuthorizationRequest, value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    scopes = parse_scope(value)
    if scopes is None:
        raise draft.refuse("invalid_scope", "The scope parameter is malformed.")
    return scopes


def _nonce(draft: AuthorizationRequest, value: str | None) -> str | None:
    if value is not None and len(value) > NONCE_MAX:
        raise draft.refuse("invalid_request", "The nonce is too long.")
    return value


def _challenge(draft: AuthorizationRequest, params: Mapping[str, str]) -> str:
    """RFC 7636 §4.3: required, ``S256`` only (the default, ``plain``, is refused too)."""
    challenge = params.get("code_challenge")
    if challenge is None:
        raise draft.refuse("invalid_request", "PKCE is required: code_challenge is missing.")
    if params.get("code_challenge_method") != "S256":
        raise draft.refuse("invalid_request", "The code_challenge_method must be S256.")
    if _CHALLENGE.fullmatch(challenge) is None:
        raise draft.refuse("invalid_request", "The code_challenge is not an S256 challenge.")
    return challenge


def _prompt(draft: AuthorizationRequest, value: str | None) -> frozenset[str]:
    prompt = frozenset(value.split()) if value is not None else frozenset()
    if not prompt <= PROMPTS | SATISFIED_PROMPTS:
        raise draft.refuse("invalid_request", "The prompt parameter has an unknown value.")
    if "none" in prompt and len(prompt) > 1:
        raise draft.refuse("invalid_request", "prompt=none cannot be combined with another.")
    return prompt & PROMPTS


def _max_age(draft: AuthorizationRequest, value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isascii() or not value.isdigit() or len(value) > MAX_AGE_DIGITS:
        raise draft.refuse("invalid_request", "max_age must be a number of seconds.")
    return int(value)


# --- signing in ----------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _marker_key(refresh_key: bytes) -> bytes:
    """The sign-in marker's HMAC key: HKDF from the service's refresh-token key, bound to this
    one use (so neither key says anything of the other)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=AUTH_AFTER_KEY_INFO)
    return hkdf.derive(refresh_key)


def _marked_request(params: Mapping[str, str]) -> dict[str, str]:
    """The request a sign-in marker stands for: its parameters without the marker, and without
    ``prompt=login`` (the sign-in the marker asks for answers it)."""
    marked = {name: value for name, value in params.items() if name != AUTH_AFTER}
    prompt = [value for value in marked.pop("prompt", "").split() if value != "login"]
    if prompt:
        marked["prompt"] = " ".join(prompt)
    return marked


def _marker_tag(svc: Services, params: Mapping[str, str], moment: int) -> str:
    """The HMAC of a sign-in marker: its time and the whole request it was made for (its
    client, redirect URI, ``state``, ``nonce``, ...), so that it fits no other request."""
    request = urlencode(sorted(_marked_request(params).items()))
    message = f"{moment}\x00{request}".encode()
    digest = hmac.new(_marker_key(svc.refresh_key), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


def _auth_after(svc: Services, draft: AuthorizationRequest, value: str | None) -> int | None:
    """A sign-in marker's time (milliseconds) if it is ours, for this very request, and
    recent; the time now for any other marker (only a sign-in from now on counts); None without
    one."""
    if value is None:
        return None
    now = int(svc.clock().timestamp() * 1000)
    moment, _, tag = value.partition(".")
    if not moment.isascii() or not moment.isdigit() or len(moment) > MARKER_DIGITS:
        return now
    expected = _marker_tag(svc, draft.params, int(moment))
    if not hmac.compare_digest(tag.encode(), expected.encode()):
        return now
    age = (now - int(moment)) / 1000
    return int(moment) if -60 <= age <= AUTH_AFTER_WINDOW else now


def demands_new_sign_in(request: AuthorizationRequest) -> bool:
    """Whether only a sign-in newer than the request answers it, rather than any session."""
    return (
        "login" in request.prompt or request.max_age is not None or request.auth_after is not None
    )


def needs_sign_in(request: AuthorizationRequest, auth_time: datetime | None, now: datetime) -> bool:
    """Whether the browser must sign in (again): no session (``auth_time`` None), or one the
    request does not accept: with a marker, one not newer than it (newer, it is fresh whatever
    else the request says); else ``prompt=login``, or older than ``max_age``."""
    if auth_time is None:
        return True
    if request.auth_after is not None:
        return auth_time.timestamp() * 1000 <= request.auth_after
    if "login" in request.prompt:
        return True
    if request.max_age is None:
        return False
    # max_age=0 is prompt=login (OpenID Connect Core §3.1.2.1), whatever the clock's resolution.
    return request.max_age == 0 or (now - auth_time).total_seconds() > request.max_age


def return_to(svc: Services, request: AuthorizationRequest, now: datetime) -> str:
    """The request the login page comes back to: the same one, ``prompt=login`` dropped (the
    sign-in about to happen answers it) and a fresh sign-in marker instead, when the request
    demands a new sign-in (``prompt=login``, ``max_age``, or a marker already). A request that
    only found nobody signed in is sent back as it is: any live session answers it, so the page
    may first try to refresh one whose access cookie ran out."""
    params = _marked_request(request.params)
    if demands_new_sign_in(request):
        moment = int(now.timestamp() * 1000)
        tag = _marker_tag(svc, params, moment)
        params[AUTH_AFTER] = f"{moment}.{tag}"
    target = "/authorize?" + urlencode(params)
    if len(target) > RETURN_TO_MAX:
        raise request.refuse("invalid_request", "The request is too long.")
    return target


# --- answers at the redirect URI -----------------------------------------------------------------


def redirect_with(redirect_uri: str, params: Mapping[str, str | None]) -> str:
    """``redirect_uri`` with ``params`` added to its query (it may have one: RFC 6749 §3.1.2)."""
    added = urlencode({name: value for name, value in params.items() if value is not None})
    query = urlsplit(redirect_uri).query
    return f"{redirect_uri}{'&' if query else '?'}{added}"


def error_location(settings_issuer: str, error: RedirectError) -> str:
    return redirect_with(
        error.redirect_uri,
        {
            "error": error.error,
            "error_description": error.description,
            "state": error.state,
            "iss": settings_issuer,
        },
    )


# --- codes ---------------------------------------------------------------------------------------


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(ASCII(verifier))), no padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


async def issue_code(
    svc: Services,
    request: AuthorizationRequest,
    *,
    user_id: str,
    session_id: str,
    auth_time: datetime,
) -> str:
    """A code for the signed-in browser's user (its session ``session_id``, signed in at
    ``auth_time``), stored as its hash; the code itself goes to the redirect URI only."""
    settings = svc.settings
    audiences = app_token_audiences(settings, request.client)
    now = svc.clock()
    code = secrets.token_urlsafe(CODE_BYTES)
    async with svc.sessions() as db:
        user = await db.get(User, user_id)
        if user is None or user.disabled:
            raise request.refuse("access_denied", "The account cannot sign in.")
        scopes = _granted(request.scopes, user, request.client, settings)
        db.add(
            AuthorizationCode(
                code_hash=code_hash(code),
                client_id=request.client.client_id,
                user_id=user_id,
                session_id=session_id,
                redirect_uri=request.redirect_uri,
                scope=" ".join(scopes),
                audiences=audiences,
                nonce=request.nonce,
                code_challenge=request.code_challenge,
                auth_time=auth_time,
                created_at=now,
                expires_at=now + timedelta(seconds=settings.authorization_code_ttl),
            )
        )
        await db.commit()
    log.info(
        "authorization code issued",
        extra={"client_id": request.client.client_id, "user_id": user_id},
    )
    return code


def app_token_audiences(settings: Settings, client: RegisteredClient) -> list[str]:
    """What an app's tokens name: the services it is registered for, and ``/userinfo`` (its own
    audience, :attr:`Settings.userinfo_audience`). Not the auth service's account routes
    (``/me``, ``/sessions``, logout): another team's app holding a user's token must not list or
    sign out their devices. An app registered for the ``auth`` audience (a first-party app) is."""
    return grants.audiences_for(settings, (), client.audiences | {settings.userinfo_audience})


def _granted(
    requested: Iterable[str] | None, user: User, client: RegisteredClient, settings: Settings
) -> list[str]:
    """The scopes a code (or its tokens) carry: those requested that the user's roles grant and
    the app is registered to hold, and the OpenID Connect ones requested; all of the first kind
    when nothing was requested. An app holds no more than its registration says, whoever signs
    in: an administrator signing in to another team's app does not hand it ``admin``. Scopes
    nobody knows are left out (RFC 6749 §3.3: the answer's ``scope`` says what was granted)."""
    allowed = set(scopes_for(user.roles, settings)) & client.scopes
    if requested is None:
        return sorted(allowed)
    wanted = set(requested)
    return sorted((wanted & allowed) | (wanted & IDENTITY_SCOPES))


async def forget_expired(db: AsyncSession, now: datetime) -> int:
    """Housekeeping: drop codes past their expiry (a replay of one is refused as unknown then;
    the session it issued lives on as any other). Kept a minute beyond, for replay detection."""
    result = await db.execute(
        delete(AuthorizationCode).where(AuthorizationCode.expires_at < now - timedelta(minutes=1))
    )
    return int(getattr(result, "rowcount", 0) or 0)


# --- redemption (the token endpoint) -------------------------------------------------------------


def _invalid_grant(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description)


def app_caller(caller: TokenCaller) -> RegisteredClient:
    """The registered app redeeming a code: a public one names itself, a confidential one has
    authenticated (``clients.token_caller`` refuses one that only names itself)."""
    if caller.client_id is None:
        raise OAuthError("invalid_request", "The parameter client_id is missing.")
    client = caller.registered
    if client is None and not caller.authenticated:
        raise clients.invalid_client()
    if client is None or client.kind != "app":
        raise OAuthError("unauthorized_client", "This grant is for registered apps.")
    if client.disabled or (client.confidential and not caller.authenticated):
        raise clients.invalid_client()
    return client


@dataclass(frozen=True)
class _Claimed:
    code_hash: str
    user: User
    scopes: list[str]
    audiences: list[str]
    nonce: str | None
    auth_time: datetime


async def redeem(
    svc: Services,
    client: RegisteredClient,
    *,
    code: str,
    redirect_uri: str | None,
    code_verifier: str | None,
    ip: str | None,
    user_agent: str | None,
) -> dict[str, Any]:
    """The ``authorization_code`` grant: the token endpoint's answer (RFC 6749 §5.1, with
    ``id_token`` for an OpenID Connect request)."""
    claimed = await _claim(svc, client, code, redirect_uri, code_verifier)
    pair = await devices.open_session(
        svc,
        claimed.user,
        client_id=client.client_id,
        user_agent=user_agent,
        ip=ip,
        audiences=claimed.audiences,
        scopes=claimed.scopes,
    )
    if not await _record_issued(svc, claimed.code_hash, pair.session_id):
        await _revoke_issued(svc, claimed.user.id, pair.session_id)
        raise _invalid_grant("The authorization code was used twice; its tokens are revoked.")
    body: dict[str, Any] = {
        "access_token": pair.access_token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
        "refresh_token": pair.refresh_token,
        "scope": pair.scope,
    }
    if "openid" in claimed.scopes:
        key = await svc.keys.signing_key("id")
        body["id_token"] = idtokens.sign_id_token(
            key,
            svc.settings,
            subject=claimed.user.id,
            audience=client.client_id,
            session_id=pair.session_id,
            auth_time=claimed.auth_time,
            nonce=claimed.nonce,
            now=svc.clock(),
            access_token=pair.access_token,
        )
    svc.metrics.tokens_issued.labels(AUTHORIZATION_CODE).inc()
    return body


async def _claim(
    svc: Services,
    client: RegisteredClient,
    code: str,
    redirect_uri: str | None,
    code_verifier: str | None,
) -> _Claimed:
    """Check the code and mark it used (committed), or refuse it; a code already used revokes
    what its first redemption issued, then is refused."""
    if _CODE.fullmatch(code) is None:
        raise _invalid_grant("The authorization code is not valid.")
    hashed = code_hash(code)
    now = svc.clock()
    async with svc.sessions() as db:
        row = await db.scalar(
            select(AuthorizationCode).where(AuthorizationCode.code_hash == hashed).with_for_update()
        )
        if row is None:
            raise _invalid_grant("The authorization code is not valid.")
        if row.used_at is not None:
            user_id, issued = row.user_id, await _poison(db, row, now)
        else:
            refusal = await _refusal(
                db, row, client, redirect_uri=redirect_uri, code_verifier=code_verifier, now=now
            )
            if refusal is not None:
                raise _invalid_grant(refusal)
            claimed = await _mark_used(db, row, client, svc, now)
            if claimed is not None:
                return claimed
            user_id, issued = row.user_id, None  # a racing redemption won: ours is a replay
    if issued is not None:
        await _revoke_issued(svc, user_id, issued)
    raise _invalid_grant("The authorization code was already used; its tokens are revoked.")


async def _refusal(
    db: AsyncSession,
    row: AuthorizationCode,
    client: RegisteredClient,
    *,
    redirect_uri: str | None,
    code_verifier: str | None,
    now: datetime,
) -> str | None:
    """Why this unused code cannot be redeemed by this request; None if it can. A failed check
    leaves the code unused: only its owner, with the verifier, can use it."""
    if row.client_id != client.client_id:
        return "The authorization code was issued to another client."
    if row.expires_at <= now:
        return "The authorization code has expired."
    if redirect_uri != row.redirect_uri:
        return "The redirect_uri differs from the authorization request's."
    if code_verifier is None or _VERIFIER.fullmatch(code_verifier) is None:
        return "The code_verifier is missing or malformed."
    if not hmac.compare_digest(s256(code_verifier), row.code_challenge):
        return "The code_verifier does not match the code_challenge."
    browser = await db.get(DeviceSession, row.session_id)
    if browser is None or browser.revoked_at is not None or browser.expires_at <= now:
        return "The sign-in that approved the code has ended."
    return None


async def _mark_used(
    db: AsyncSession,
    row: AuthorizationCode,
    client: RegisteredClient,
    svc: Services,
    now: datetime,
) -> _Claimed | None:
    """Mark the code used and commit; None if another redemption did first."""
    user = await db.get(User, row.user_id)
    if user is None or user.disabled:
        raise _invalid_grant("The account is disabled.")
    result = await db.execute(
        update(AuthorizationCode)
        .where(AuthorizationCode.code_hash == row.code_hash, AuthorizationCode.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    claimed = _Claimed(
        row.code_hash,
        user,
        _granted(row.scope.split(), user, client, svc.settings),
        list(row.audiences),
        row.nonce,
        row.auth_time,
    )
    await db.commit()
    return claimed if getattr(result, "rowcount", 0) == 1 else None


async def _poison(db: AsyncSession, row: AuthorizationCode, now: datetime) -> str | None:
    """A used code presented again: record it, and answer the session its first redemption
    opened (to revoke); before that redemption recorded its session, mark the code so that it
    revokes its own (:func:`_record_issued`). Committed."""
    issued = row.issued_session_id
    if issued is None:
        await db.execute(
            update(AuthorizationCode)
            .where(
                AuthorizationCode.code_hash == row.code_hash,
                AuthorizationCode.issued_session_id.is_(None),
            )
            .values(issued_session_id=REPLAYED)
            .execution_options(synchronize_session=False)
        )
    await revocation.security_event(
        db,
        "authorization_code_reuse",
        now,
        user_id=row.user_id,
        session_id=issued if issued != REPLAYED else None,
        detail={"client": row.client_id},
    )
    await db.commit()
    log.warning(
        "authorization code presented again; what it issued is revoked",
        extra={"client_id": row.client_id, "user_id": row.user_id},
    )
    return issued if issued not in (None, REPLAYED) else None


async def _record_issued(svc: Services, hashed: str, session_id: str) -> bool:
    """Note the session a redemption opened; False if a replay came first (it is then to be
    revoked at once)."""
    async with svc.sessions() as db:
        result = await db.execute(
            update(AuthorizationCode)
            .where(
                AuthorizationCode.code_hash == hashed,
                AuthorizationCode.issued_session_id.is_(None),
            )
            .values(issued_session_id=session_id)
            .execution_options(synchronize_session=False)
        )
        await db.commit()
    return getattr(result, "rowcount", 0) == 1


async def _revoke_issued(svc: Services, user_id: str, session_id: str) -> None:
    """Sign out the session a replayed code issued: a ``session`` event tells the edges."""
    with contextlib.suppress(NotFoundError):  # gone already (its user deleted)
        await devices.revoke_session(svc, user_id, session_id, "code_reuse")

"""The client registry: the OAuth clients an operator registers (admin API, ``gatepass clients``).

A client is a **service** (it gets tokens of its own with ``client_credentials`` and exchanges
users' tokens) or an **app** (users sign in through it). It authenticates at the token endpoint
with ``private_key_jwt`` (RFC 7523: its public keys are kept inline, ``jwks``, or fetched from its
``jwks_uri``), with ``client_secret_basic`` (a 256-bit secret the service makes, shown once and
kept as its SHA-256 only), or not at all (``none``: a public app). Its ``audiences`` are those it
may ask tokens for, its ``scopes`` those it may hold, its ``resource`` the audience it serves
itself (a user token it exchanges must name it). An app that signs users in through the
authorization endpoint also has ``redirect_uris`` (where its codes may go, compared exactly) and
``post_logout_redirect_uris`` (where RP-initiated logout may send the browser back): absolute
``https`` URIs (``http`` only to a loopback host), no fragment, at most
:data:`REDIRECT_URIS_MAX` of each; a service has neither.

Clients configured in the settings (``GATEPASS_AUTH_CLIENTS``, ``..._INTROSPECTION_CLIENTS``)
keep working beside the registry; an id configured there cannot be registered. A client id never
starts with ``usr_``: user ids do, and a token is a service's own exactly when its ``sub`` is its
``client_id`` (so a user id must never be a client id).

Disabling or removing a confidential client records a ``client`` revocation event for its id (the
``client_id`` claim of its tokens): the edges refuse the service tokens it holds, and the tokens it
got by exchange for users, as soon as they read the feed.
Nothing here ever puts a secret, or a hash of one, in an error message or a log line.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import chain
from types import EllipsisType
from typing import Any, Final, Literal, cast
from urllib.parse import urlsplit

import httpx
import jwt
from sqlalchemy import delete, event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from auth_service import revocation
from auth_service.clock import Clock
from auth_service.config import Settings
from auth_service.errors import NotFoundError
from auth_service.models import Client, ClientAssertion
from auth_service.outbound import tls_context
from gatepass.core.jwk import PRIVATE_MEMBERS  # a registry holds public keys only
from gatepass.problems import ProblemError

log = logging.getLogger("gatepass.auth.registry")

Kind = Literal["service", "app"]
AuthMethod = Literal["private_key_jwt", "client_secret_basic", "none"]
KINDS: Final = ("service", "app")
AUTH_METHODS: Final = ("private_key_jwt", "client_secret_basic", "none")

CLIENT_ID_MAX: Final = 100
_CLIENT_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{CLIENT_ID_MAX}}}")
USER_ID_PREFIX: Final = "usr_"
SECRET_BYTES: Final = 32  # 256 bits
JWKS_URI_MAX: Final = 2048
JWKS_MAX_KEYS: Final = 10
JWKS_MAX_BYTES: Final = 64 * 1024
KID_MAX: Final = 200
RSA_MIN_BITS: Final = 2048
REDIRECT_URIS_MAX: Final = 10
REDIRECT_URI_MAX: Final = 2048
# The signature algorithms an assertion may use, by the key type that verifies it. Ed25519 is
# ``Ed25519`` since RFC 9864, which deprecates ``EdDSA``: both are accepted.
ALGS_BY_KTY: Final[Mapping[str, frozenset[str]]] = {
    "EC": frozenset({"ES256"}),
    "RSA": frozenset({"RS256", "PS256"}),
    "OKP": frozenset({"EdDSA", "Ed25519"}),
}
_CURVES: Final = {"EC": "P-256", "OKP": "Ed25519"}


class RegistryError(ProblemError):
    """A registration or change the registry refuses: the detail says which field and why,
    never what it held."""

    status = 422
    code = "invalid_client_metadata"  # RFC 7591 §3.2.2
    title = "Invalid client registration"


class ClientExistsError(ProblemError):
    status = 409
    code = "client_exists"
    title = "Client already registered"


@dataclass(frozen=True)
class RegisteredClient:
    """A registered client, as the token endpoint and the admin API see it (never its secret)."""

    client_id: str
    kind: Kind
    auth_method: AuthMethod
    audiences: frozenset[str]
    scopes: frozenset[str]
    resource: str | None
    disabled: bool
    jwks: Mapping[str, Any] | None
    jwks_uri: str | None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()

    @property
    def confidential(self) -> bool:
        """It proves who it is (a secret or a signed assertion); a public app only names itself."""
        return self.auth_method != "none"


def _record(row: Client) -> RegisteredClient:
    return RegisteredClient(
        client_id=row.id,
        kind=cast(Kind, row.kind),
        auth_method=cast(AuthMethod, row.auth_method),
        audiences=frozenset(row.audiences),
        scopes=frozenset(row.scopes),
        resource=row.resource,
        disabled=row.disabled,
        jwks=row.jwks,
        jwks_uri=row.jwks_uri,
        created_at=row.created_at,
        updated_at=row.updated_at,
        redirect_uris=tuple(row.redirect_uris or ()),
        post_logout_redirect_uris=tuple(row.post_logout_redirect_uris or ()),
    )


def web_origins(client: RegisteredClient) -> set[str]:
    """The origins (``scheme://host[:port]``) of an app's redirect and post-logout URIs: the
    web pages that may call the token and userinfo endpoints from a browser (CORS)."""
    origins: set[str] = set()
    for uri in (*client.redirect_uris, *client.post_logout_redirect_uris):
        parts = urlsplit(uri)
        origins.add(f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}".lower())
    return origins


def hash_secret(secret: str) -> str:
    """What is stored of a client secret: its SHA-256, hex (the secret is 256 random bits, so a
    slow hash would add nothing)."""
    return hashlib.sha256(secret.encode()).hexdigest()


# --- reading -------------------------------------------------------------------------------------


async def find(db: AsyncSession, client_id: str) -> RegisteredClient | None:
    """The registered client ``client_id``, disabled or not; None when there is none."""
    if not client_id or len(client_id) > CLIENT_ID_MAX:
        return None
    row = await db.get(Client, client_id)
    return None if row is None else _record(row)


async def credentials_of(
    db: AsyncSession, client_id: str
) -> tuple[RegisteredClient, str | None] | None:
    """The client and its secret's hash, for client authentication alone (``clients.py``)."""
    if not client_id or len(client_id) > CLIENT_ID_MAX:
        return None
    row = await db.get(Client, client_id)
    return None if row is None else (_record(row), row.secret_hash)


# --- the registry as client authentication reads it ---------------------------------------------

CLIENT_CACHE_SECONDS: Final = 2.0
"""How long a client authentication may go on a cached registration: what a change made by
another replica, or by the ``gatepass`` command, takes to reach this one."""

Credentials = tuple[RegisteredClient, str | None] | None


class ClientCache:
    """Registered clients as client authentication reads them (with the secret's hash), each
    kept :data:`CLIENT_CACHE_SECONDS`, at most ``capacity`` of them, unknown ids too.

    A grant then costs no database read for its client: measured, the read was the largest part
    of a client-credentials grant. A change committed in this process empties it at once
    (:func:`forget_on_commit`); one committed elsewhere is seen within the lifetime, and a
    disable's revocation reaches that far ahead, so that a token issued meanwhile on a stale
    entry is revoked with the rest (:func:`_revoke_service_tokens`).
    """

    def __init__(
        self,
        *,
        ttl: float = CLIENT_CACHE_SECONDS,
        capacity: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl, self._capacity, self._clock = ttl, capacity, clock
        self._entries: OrderedDict[str, tuple[float, Credentials]] = OrderedDict()

    async def credentials(
        self, sessions: async_sessionmaker[AsyncSession], client_id: str
    ) -> Credentials:
        """:func:`credentials_of` ``client_id``, from the cache while its entry is fresh."""
        now = self._clock()
        entry = self._entries.get(client_id)
        if entry is not None and entry[0] > now:
            return entry[1]
        async with sessions() as db:
            found = await credentials_of(db, client_id)
        self._entries[client_id] = (now + self._ttl, found)
        self._entries.move_to_end(client_id)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)
        return found

    async def find(
        self, sessions: async_sessionmaker[AsyncSession], client_id: str
    ) -> RegisteredClient | None:
        found = await self.credentials(sessions, client_id)
        return None if found is None else found[0]

    def clear(self) -> None:
        self._entries.clear()


_CACHE = "gatepass.auth.client_cache"
_CHANGED = "gatepass.auth.clients_changed"


def forget_on_commit(sessions: async_sessionmaker[AsyncSession], cache: ClientCache) -> None:
    """Make every session of ``sessions`` empty ``cache`` when it commits a change of a client."""
    sessions.configure(info={**sessions.kw.get("info", {}), _CACHE: cache})


@event.listens_for(Session, "after_flush")
def _note_client_changes(session: Session, _context: object) -> None:
    if any(isinstance(row, Client) for row in chain(session.new, session.dirty, session.deleted)):
        session.info[_CHANGED] = True


@event.listens_for(Session, "after_commit")
def _forget_after_commit(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        cache = session.info.get(_CACHE)
        if isinstance(cache, ClientCache):
            cache.clear()


async def listed(db: AsyncSession) -> list[RegisteredClient]:
    """Every registered client, by id."""
    rows = await db.scalars(select(Client).order_by(Client.id))
    return [_record(row) for row in rows]


async def get(db: AsyncSession, client_id: str) -> RegisteredClient:
    """The registered client ``client_id``, or a 404."""
    found = await find(db, client_id)
    if found is None:
        raise NotFoundError("No such client.")
    return found


# --- changing ------------------------------------------------------------------------------------


async def register(
    db: AsyncSession,
    settings: Settings,
    *,
    client_id: str,
    kind: str,
    auth_method: str,
    audiences: Iterable[str],
    scopes: Iterable[str],
    resource: str | None = None,
    jwks: Mapping[str, Any] | None = None,
    jwks_uri: str | None = None,
    redirect_uris: Iterable[str] | None = None,
    post_logout_redirect_uris: Iterable[str] | None = None,
    now: datetime,
) -> tuple[RegisteredClient, str | None]:
    """Register a client and commit. Answers the client and, for ``client_secret_basic``, the
    secret the service made for it: shown this once, kept as its hash only."""
    _check_identity(settings, client_id, kind, auth_method)
    keys, uri = _keys_for(auth_method, jwks, jwks_uri, settings)
    redirects = _redirect_uris(kind, redirect_uris, "redirect_uris")
    logouts = _redirect_uris(kind, post_logout_redirect_uris, "post_logout_redirect_uris")
    secret = secrets.token_urlsafe(SECRET_BYTES) if auth_method == "client_secret_basic" else None
    row = Client(
        id=client_id,
        kind=kind,
        auth_method=auth_method,
        secret_hash=None if secret is None else hash_secret(secret),
        jwks=keys,
        jwks_uri=uri,
        audiences=_audiences(audiences, settings),
        scopes=_scopes(scopes, settings),
        resource=_resource(resource, settings),
        disabled=False,
        created_at=now,
        updated_at=now,
        redirect_uris=redirects,
        post_logout_redirect_uris=logouts,
    )
    db.add(row)
    try:
        await db.commit()
    except IntegrityError as exc:
        await db.rollback()
        raise ClientExistsError("A client with this id is already registered.") from exc
    log.info("client registered", extra={"client_id": client_id, "auth_method": auth_method})
    return _record(row), secret


async def declare(
    db: AsyncSession,
    settings: Settings,
    *,
    client_id: str,
    kind: str,
    auth_method: str,
    audiences: Iterable[str],
    scopes: Iterable[str],
    resource: str | None,
    jwks: Mapping[str, Any] | None,
    jwks_uri: str | None,
    secret_hash: str | None,
    redirect_uris: Iterable[str] | None = None,
    post_logout_redirect_uris: Iterable[str] | None = None,
    now: datetime,
) -> RegisteredClient:
    """Register a client as a clients file declares it, or bring the registered one in line
    (``client_file.py``), and commit. A declared secret is given as its hash: the file never
    holds the secret. Whether the client is disabled is left as it is: an operator's disable
    outlives a restart."""
    _check_identity(settings, client_id, kind, auth_method)
    if (auth_method == "client_secret_basic") != (secret_hash is not None):
        raise RegistryError("A client_secret_basic client, and it alone, has a secret.")
    keys, uri = _keys_for(auth_method, jwks, jwks_uri, settings)
    values = {
        "kind": kind,
        "auth_method": auth_method,
        "secret_hash": secret_hash,
        "jwks": keys,
        "jwks_uri": uri,
        "audiences": _audiences(audiences, settings),
        "scopes": _scopes(scopes, settings),
        "resource": _resource(resource, settings),
        "redirect_uris": _redirect_uris(kind, redirect_uris, "redirect_uris"),
        "post_logout_redirect_uris": _redirect_uris(
            kind, post_logout_redirect_uris, "post_logout_redirect_uris"
        ),
    }
    for _ in range(2):  # a replica that registered it first makes ours an update
        row = await db.get(Client, client_id)
        if row is None:
            row = Client(id=client_id, disabled=False, created_at=now, **values)
            db.add(row)
        else:
            for name, value in values.items():
                setattr(row, name, value)
        row.updated_at = now
        try:
            await db.commit()
        except IntegrityError:
            await db.rollback()
            continue
        return _record(row)
    raise ClientExistsError("The client could not be declared: it changed under us twice.")


async def update(
    db: AsyncSession,
    settings: Settings,
    client_id: str,
    *,
    audiences: Iterable[str] | None = None,
    scopes: Iterable[str] | None = None,
    resource: str | EllipsisType | None = ...,
    jwks: Mapping[str, Any] | EllipsisType | None = ...,
    jwks_uri: str | EllipsisType | None = ...,
    redirect_uris: Iterable[str] | None = None,
    post_logout_redirect_uris: Iterable[str] | None = None,
    now: datetime,
) -> RegisteredClient:
    """Change what is given (``None`` lists and ``...`` leave a field as it is; ``None`` clears
    ``resource``; an empty list clears an app's redirect URIs) and commit. A private_key_jwt
    client has its keys inline or at a URI: setting one drops the other. Tokens already issued
    keep what they were issued with until they expire.
    """
    row = await _row(db, client_id)
    if audiences is not None:
        row.audiences = _audiences(audiences, settings)
    if scopes is not None:
        row.scopes = _scopes(scopes, settings)
    if not isinstance(resource, EllipsisType):
        row.resource = _resource(resource, settings)
    if redirect_uris is not None:
        row.redirect_uris = _redirect_uris(row.kind, redirect_uris, "redirect_uris")
    if post_logout_redirect_uris is not None:
        row.post_logout_redirect_uris = _redirect_uris(
            row.kind, post_logout_redirect_uris, "post_logout_redirect_uris"
        )
    if not isinstance(jwks, EllipsisType) or not isinstance(jwks_uri, EllipsisType):
        new_keys = row.jwks if isinstance(jwks, EllipsisType) else jwks
        new_uri = row.jwks_uri if isinstance(jwks_uri, EllipsisType) else jwks_uri
        if isinstance(jwks_uri, EllipsisType) and jwks is not None:
            new_uri = None  # new inline keys replace the URI
        if isinstance(jwks, EllipsisType) and jwks_uri is not None:
            new_keys = None  # a new URI replaces the inline keys
        row.jwks, row.jwks_uri = _keys_for(row.auth_method, new_keys, new_uri, settings)
    row.updated_at = now
    await db.commit()
    return _record(row)


async def set_disabled(
    db: AsyncSession, settings: Settings, client_id: str, disabled: bool, *, now: datetime
) -> RegisteredClient:
    """Disable (or enable) a client and commit. A disabled client cannot authenticate, and the
    tokens a confidential one holds are revoked (a ``client`` event for its id)."""
    row = await _row(db, client_id)
    was_disabled = row.disabled
    row.disabled = disabled
    row.updated_at = now
    if disabled and not was_disabled:
        await _revoke_service_tokens(db, settings, row, now)
    await revocation.security_event(
        db, "client_disabled" if disabled else "client_enabled", now, detail={"client": row.id}
    )
    await db.commit()
    log.info("client %s", "disabled" if disabled else "enabled", extra={"client_id": client_id})
    return _record(row)


async def rotate_secret(db: AsyncSession, client_id: str, *, now: datetime) -> str:
    """A new secret for a client_secret_basic client (the old one stops working at once), shown
    this once. Tokens it already holds stay good until they expire; disable it to end those."""
    row = await _row(db, client_id)
    if row.auth_method != "client_secret_basic":
        raise RegistryError("Only a client_secret_basic client has a secret.")
    secret = secrets.token_urlsafe(SECRET_BYTES)
    row.secret_hash = hash_secret(secret)
    row.updated_at = now
    await revocation.security_event(db, "client_secret_rotated", now, detail={"client": row.id})
    await db.commit()
    log.info("client secret rotated", extra={"client_id": client_id})
    return secret


async def remove(db: AsyncSession, settings: Settings, client_id: str, *, now: datetime) -> None:
    """Remove a client and commit; the tokens a confidential one holds are revoked."""
    row = await _row(db, client_id)
    if not row.disabled:
        await _revoke_service_tokens(db, settings, row, now)
    await db.delete(row)
    await revocation.security_event(db, "client_removed", now, detail={"client": client_id})
    await db.commit()
    log.info("client removed", extra={"client_id": client_id})


async def _row(db: AsyncSession, client_id: str) -> Client:
    row = None if len(client_id) > CLIENT_ID_MAX else await db.get(Client, client_id)
    if row is None:
        raise NotFoundError("No such client.")
    return row


async def _revoke_service_tokens(
    db: AsyncSession, settings: Settings, row: Client, now: datetime
) -> None:
    """End every token issued to the client up to now (and for the client cache's lifetime
    after it: :class:`ClientCache`): a ``client`` event for its id (tokens
    whose ``client_id`` claim it is: its own service tokens, and those it got by token exchange
    for users, whose ``sub`` is the user's), living as long as the longest token it could hold.

    A ``user`` event for its id (its own tokens' ``sub``) is recorded too: it is what an edge on
    a library that predates the ``client`` kind understands, and what the issuer's own check of
    service tokens reads (``grants.service_token_revoked``)."""
    if row.auth_method == "none":
        return  # a public client gets no tokens of its own
    longest = max(settings.access_token_ttl, settings.service_token_ttl)
    # Ahead by the client cache's lifetime: a replica that still holds the client as enabled
    # may issue it a token until then, and that token is revoked too.
    cut = revocation.cut_off(now + timedelta(seconds=CLIENT_CACHE_SECONDS))
    expires_at = now + timedelta(seconds=longest) + revocation.LEEWAY
    kinds: tuple[revocation.EventKind, ...] = ("user", "client")
    for kind in kinds:
        await revocation.record(
            db, settings, kind, row.id, now, not_before=cut, expires_at=expires_at
        )


async def forget_expired_assertions(db: AsyncSession, now: datetime) -> int:
    """Housekeeping: drop the remembered assertion ids whose assertions have expired (a replay
    of one is refused by its ``exp`` from then on)."""
    result = await db.execute(delete(ClientAssertion).where(ClientAssertion.expires_at < now))
    return int(getattr(result, "rowcount", 0) or 0)


# --- validation ----------------------------------------------------------------------------------


def _check_identity(settings: Settings, client_id: str, kind: str, auth_method: str) -> None:
    check_client_id(client_id)
    if client_id in settings.confidential_clients:
        raise ClientExistsError("A client with this id is configured in the settings.")
    if kind not in KINDS:
        raise RegistryError("kind must be 'service' or 'app'.")
    if auth_method not in AUTH_METHODS:
        raise RegistryError(
            "auth_method must be 'private_key_jwt', 'client_secret_basic' or 'none'."
        )
    if auth_method == "none" and kind != "app":
        raise RegistryError("Only an app may be a public client (auth_method 'none').")


def check_client_id(client_id: str) -> None:
    if _CLIENT_ID.fullmatch(client_id) is None:
        raise RegistryError(
            "A client id has letters, digits, '.', '_', ':' or '-' only "
            f"(1 to {CLIENT_ID_MAX} characters)."
        )
    if client_id.startswith(USER_ID_PREFIX):
        raise RegistryError(f"A client id may not start with {USER_ID_PREFIX!r} (user ids do).")


def _names(values: Iterable[str], what: str) -> list[str]:
    if isinstance(values, str):
        raise RegistryError(f"{what} must be a list.")
    names = list(values)
    if not all(isinstance(name, str) for name in names):
        raise RegistryError(f"{what} must be a list of strings.")
    return sorted(set(names))


def _audiences(values: Iterable[str], settings: Settings) -> list[str]:
    names = _names(values, "audiences")
    if not names:
        raise RegistryError("A client needs one audience or more.")
    unknown = sorted(set(names) - set(settings.audiences))
    if unknown:
        raise RegistryError(f"Unknown audiences: {_listed(unknown)}.")
    return names


def _scopes(values: Iterable[str], settings: Settings) -> list[str]:
    names = _names(values, "scopes")
    unknown = sorted(set(names) - settings.known_scopes)
    if unknown:
        raise RegistryError(f"Unknown scopes: {_listed(unknown)}.")
    return names


def _resource(value: str | None, settings: Settings) -> str | None:
    if value is not None and value not in settings.audiences:
        raise RegistryError("resource must be one of the configured audiences.")
    return value


def _listed(names: list[str]) -> str:
    """Names a caller sent, quoted and bounded (they are not secrets, but may be anything)."""
    shown = [json.dumps(name[:100]) for name in names[:10]]
    return ", ".join(shown) + (", ..." if len(names) > 10 else "")


def _keys_for(
    auth_method: str,
    jwks: Mapping[str, Any] | None,
    jwks_uri: str | None,
    settings: Settings,
) -> tuple[dict[str, Any] | None, str | None]:
    """The keys a client of ``auth_method`` keeps: exactly one of them for private_key_jwt,
    neither for the others."""
    if auth_method != "private_key_jwt":
        if jwks is not None or jwks_uri is not None:
            raise RegistryError("Only a private_key_jwt client has jwks or a jwks_uri.")
        return None, None
    if (jwks is None) == (jwks_uri is None):
        raise RegistryError("A private_key_jwt client needs exactly one of jwks and jwks_uri.")
    if jwks is not None:
        return public_jwks(jwks), None
    assert jwks_uri is not None
    return None, check_jwks_uri(jwks_uri, settings)


def public_jwks(value: Any) -> dict[str, Any]:
    """A JWK Set of public signing keys, checked: EC P-256, RSA of 2048 bits or more, or
    Ed25519, each with its ``kid`` (no two alike). A private key is refused, never reduced to
    its public part: whoever sent it has leaked it."""
    if not isinstance(value, Mapping) or not isinstance(value.get("keys"), list):
        raise RegistryError('jwks must be a JWK Set: {"keys": [...]}.')
    keys = value["keys"]
    if not 1 <= len(keys) <= JWKS_MAX_KEYS:
        raise RegistryError(f"jwks must hold 1 to {JWKS_MAX_KEYS} keys.")
    kids: set[str] = set()
    for number, key in enumerate(keys, 1):
        kid = check_public_jwk(key, f"key {number}")
        if kid in kids:
            raise RegistryError(f"Key {number}: its kid is used by another key.")
        kids.add(kid)
    checked = {"keys": [dict(key) for key in keys]}
    try:
        size = len(json.dumps(checked, allow_nan=False))
    except ValueError:  # NaN or Infinity, which Python reads as JSON but JSON does not have
        raise RegistryError("jwks holds a number that JSON does not have.") from None
    if size > JWKS_MAX_BYTES:
        raise RegistryError(f"jwks may take {JWKS_MAX_BYTES} bytes at most.")
    return checked


def check_public_jwk(key: Any, where: str = "the key") -> str:
    """Check one public JWK for assertions; its ``kid``. Messages name members, never values."""
    if not isinstance(key, Mapping):
        raise RegistryError(f"{where.capitalize()} is not a JSON object.")
    if PRIVATE_MEMBERS & key.keys():
        raise RegistryError(
            f"{where.capitalize()} is a private (or symmetric) key: register the public key "
            "only, and treat this one as leaked."
        )
    kid = key.get("kid")
    if not isinstance(kid, str) or not 1 <= len(kid) <= KID_MAX:
        raise RegistryError(f"{where.capitalize()} needs a kid (1 to {KID_MAX} characters).")
    kty = key.get("kty")
    if not isinstance(kty, str) or kty not in ALGS_BY_KTY:
        raise RegistryError(f"{where.capitalize()}: kty must be EC, RSA or OKP.")
    curve = _CURVES.get(kty)
    if curve is not None and key.get("crv") != curve:
        raise RegistryError(f"{where.capitalize()}: a {kty} key must be on {curve}.")
    alg = key.get("alg")
    if alg is not None and alg not in ALGS_BY_KTY[kty]:
        raise RegistryError(
            f"{where.capitalize()}: alg must be one of {', '.join(sorted(ALGS_BY_KTY[kty]))}."
        )
    if key.get("use", "sig") != "sig":
        raise RegistryError(f"{where.capitalize()}: use must be 'sig'.")
    try:
        loaded = jwt.PyJWK(dict(key), algorithm=pyjwt_alg(alg or min(ALGS_BY_KTY[kty])))
    except (jwt.PyJWTError, ValueError, TypeError):
        # PyJWT's message may quote the key: never pass it on.
        raise RegistryError(f"{where.capitalize()} is not a valid {kty} public key.") from None
    if kty == "RSA" and getattr(loaded.key, "key_size", 0) < RSA_MIN_BITS:
        raise RegistryError(f"{where.capitalize()}: an RSA key needs {RSA_MIN_BITS} bits or more.")
    return kid


def pyjwt_alg(alg: str) -> str:
    """The name PyJWT knows an algorithm by: it predates RFC 9864's ``Ed25519``."""
    return "EdDSA" if alg == "Ed25519" else alg


_LOOPBACK_NAMES: Final = frozenset({"localhost"})


def _redirect_uris(kind: str, values: Iterable[str] | None, what: str) -> list[str] | None:
    """An app's redirect (or post-logout) URIs, checked (:func:`check_redirect_uri`), each once,
    in the order given; None when there are none. A service has none."""
    if values is None:
        return None
    if isinstance(values, str):
        raise RegistryError(f"{what} must be a list.")
    uris = list(values)
    if uris and kind != "app":
        raise RegistryError(f"Only an app has {what}.")
    if len(uris) > REDIRECT_URIS_MAX:
        raise RegistryError(f"{what}: at most {REDIRECT_URIS_MAX} URIs.")
    checked = [check_redirect_uri(uri, what) for uri in uris]
    return list(dict.fromkeys(checked)) or None


def check_redirect_uri(uri: object, what: str = "redirect_uris") -> str:
    """An absolute ``https`` URI (``http`` only to a loopback host: 127.0.0.1, ::1,
    localhost), with no fragment (RFC 6749 §3.1.2) and no credentials. Compared exactly when
    used, so it is kept as given."""
    if not isinstance(uri, str) or not 1 <= len(uri) <= REDIRECT_URI_MAX:
        raise RegistryError(f"{what}: each a URI of at most {REDIRECT_URI_MAX} characters.")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in uri):
        raise RegistryError(f"{what}: a URI holds a space or a control character.")
    try:
        parts = urlsplit(uri)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise RegistryError(f"{what}: a URI is not valid.") from None
    if parts.scheme not in ("https", "http") or not host:
        raise RegistryError(f"{what}: each must be an absolute https URI.")
    if "#" in uri:
        raise RegistryError(f"{what}: a URI may not have a fragment.")
    if parts.username is not None or parts.password is not None:
        raise RegistryError(f"{what}: a URI may not carry credentials.")
    if parts.scheme == "http" and not _loopback(host):
        raise RegistryError(f"{what}: each must be https (http only to a loopback host).")
    return uri


def check_jwks_uri(uri: str, settings: Settings) -> str:
    """An https URL (http only to a loopback host, or in development), with no credentials."""
    if not isinstance(uri, str) or not 1 <= len(uri) <= JWKS_URI_MAX:
        raise RegistryError(f"jwks_uri must be a URL of at most {JWKS_URI_MAX} characters.")
    try:
        parts = urlsplit(uri)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise RegistryError("jwks_uri is not a valid URL.") from None
    if parts.scheme not in ("https", "http") or not host:
        raise RegistryError("jwks_uri must be an https URL.")
    if parts.username is not None or parts.password is not None:
        raise RegistryError("jwks_uri may not carry credentials.")
    if parts.fragment or any(ch.isspace() or ord(ch) < 32 for ch in uri):
        raise RegistryError("jwks_uri is not a valid URL.")
    if parts.scheme == "http" and not (settings.is_development or _loopback(host)):
        raise RegistryError("jwks_uri must be https (http only to a loopback host).")
    return uri


def _loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- the keys of private_key_jwt clients ---------------------------------------------------------


@dataclass
class _Fetched:
    uri: str
    keys: list[dict[str, Any]]
    fetched_at: datetime | None  # None: never fetched successfully
    attempted_at: datetime


class ClientKeys:
    """The public keys of private_key_jwt clients: inline ones as registered, a ``jwks_uri``'s
    fetched with a timeout and a size limit, cached, and fetched again when older than
    :attr:`MAX_AGE` or when an assertion names a kid they lack: at most once per
    :attr:`MIN_INTERVAL` per client whatever the cause, one fetch at a time. A failed fetch keeps
    what was there (logged with the client id, never the document)."""

    MIN_INTERVAL: Final = 30.0
    MAX_AGE: Final = 300.0
    TIMEOUT: Final = 3.0

    def __init__(
        self,
        clock: Clock,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        self._clock = clock
        self._timeout = timeout
        self._http = httpx.AsyncClient(
            transport=transport,
            verify=tls_context(),
            timeout=timeout,
            follow_redirects=False,
            headers={"Accept": "application/json"},
        )
        self._fetched: dict[str, _Fetched] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def aclose(self) -> None:
        await self._http.aclose()

    async def keys(self, client: RegisteredClient, kid: str | None) -> list[dict[str, Any]]:
        """The client's public JWKs that may have signed with ``kid`` (all of them when None)."""
        if client.jwks is not None:
            return _named(list(client.jwks.get("keys", [])), kid)
        if client.jwks_uri is None:
            return []
        lock = self._locks.setdefault(client.client_id, asyncio.Lock())
        async with lock:
            entry = self._fetched.get(client.client_id)
            if entry is None or entry.uri != client.jwks_uri:
                entry = await self._fetch(client.client_id, client.jwks_uri, None)
            elif self._stale(entry, kid) and self._may_fetch(entry):
                entry = await self._fetch(client.client_id, client.jwks_uri, entry)
        return _named(entry.keys, kid)

    def _stale(self, entry: _Fetched, kid: str | None) -> bool:
        if entry.fetched_at is None:
            return True
        age = (self._clock() - entry.fetched_at).total_seconds()
        unknown = kid is not None and not _named(entry.keys, kid)
        return unknown or age >= self.MAX_AGE

    def _may_fetch(self, entry: _Fetched) -> bool:
        return (self._clock() - entry.attempted_at).total_seconds() >= self.MIN_INTERVAL

    async def _fetch(self, client_id: str, uri: str, old: _Fetched | None) -> _Fetched:
        now = self._clock()
        keep = old.keys if old is not None else []
        entry = _Fetched(uri, keep, old.fetched_at if old is not None else None, now)
        try:
            async with asyncio.timeout(self._timeout):  # in all: a slow drip is cut off too
                entry.keys = await self._download(uri)
            entry.fetched_at = now
        except (httpx.HTTPError, _FetchError, TimeoutError) as exc:
            log.warning(
                "cannot fetch a client's jwks_uri; keeping the keys it had",
                extra={"client_id": client_id, "error": type(exc).__name__},
            )
        self._fetched[client_id] = entry
        return entry

    async def _download(self, uri: str) -> list[dict[str, Any]]:
        async with self._http.stream("GET", uri) as response:
            if response.status_code != 200:
                raise _FetchError(f"status {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > JWKS_MAX_BYTES:
                    raise _FetchError("too large")
        try:
            document = json.loads(body)
        except ValueError:
            raise _FetchError("not JSON") from None
        return usable_keys(document)


def usable_keys(document: Any) -> list[dict[str, Any]]:
    """The keys of a fetched JWK Set that can verify an assertion; a set may also hold others
    (encryption keys, other curves), which are left out. One private key in it refuses it all:
    that key is leaked, and so may be the others."""
    keys = document.get("keys") if isinstance(document, Mapping) else None
    if not isinstance(keys, list):
        raise _FetchError("not a JWK Set")
    usable = []
    for key in keys[: 2 * JWKS_MAX_KEYS]:
        if isinstance(key, Mapping) and PRIVATE_MEMBERS & key.keys():
            raise _FetchError("a private key is published")
        try:
            check_public_jwk(key)
        except RegistryError:
            continue
        usable.append(dict(key))
    return usable


class _FetchError(Exception):
    """A jwks_uri answered something that is not a JWK Set."""


def _named(keys: list[dict[str, Any]], kid: str | None) -> list[dict[str, Any]]:
    return [key for key in keys if kid is None or key.get("kid") == kid]

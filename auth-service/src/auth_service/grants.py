"""The token endpoint's grants for services, and the audiences every token names.

- Audiences (RFC 8707): a token names the services that may accept it. A request names them by
  their configured identifiers (``resource``, and ``audience`` in a token exchange, each may
  repeat); one that is not configured, or that the caller may not ask for, is ``invalid_target``.
- ``client_credentials`` (RFC 6749 §4.4): a registered service gets a token of its own:
  ``sub`` = ``client_id`` = its id, no ``sid``, no ``act``.
- Token exchange (RFC 8693): a registered service that was called with a user's token gets a
  token to call another service for that user: the user's ``sub`` and ``sid`` (so that the
  session's and the user's revocations reach it), the service's ``client_id``, and
  ``act`` = ``{"sub": <service>}`` with the subject token's own ``act`` nested inside. It never
  holds a scope the user's token lacks, and never outlives it.

The subject token is verified as the exchanging service itself verifies the tokens it is called
with: the edges' verifier for the service's own audience (``resource``), over the keys this
service publishes. A token meant for another service cannot be exchanged by this one.

No web framework here: the routes (``routes/oauth.py``) read the forms and answer.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service import clients, registry, revocation
from auth_service.clients import TokenCaller
from auth_service.config import Settings
from auth_service.errors import OAuthError
from auth_service.keys import SigningMaterial
from auth_service.models import RevocationEvent
from auth_service.registry import RegisteredClient
from auth_service.state import Services
from auth_service.tokens import AccessGrant, SignedAccessToken, issue_access_token
from gatepass.core.errors import GatepassError, WrongAudienceError
from gatepass.core.principal import AccessPrincipal
from gatepass.core.verifier import Verifier

CLIENT_CREDENTIALS: Final = "client_credentials"
# RFC 8693 URNs (what a grant and a token type are called, nothing secret).
TOKEN_EXCHANGE: Final = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105
ACCESS_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105


@dataclass(frozen=True)
class IssuedToken:
    """An access token of a service grant: no refresh token, no session of its own."""

    access_token: str = field(repr=False)
    expires_in: int
    scope: str


# --- audiences (RFC 8707) ------------------------------------------------------------------------


def invalid_target(description: str) -> OAuthError:
    return OAuthError("invalid_target", description)


def audiences_for(
    settings: Settings, requested: Collection[str], allowed: Iterable[str]
) -> list[str]:
    """The audiences a token names: ``requested``, each configured (or ``/userinfo``'s, which
    only apps' tokens are allowed) and in ``allowed``; or, when nothing is requested, every such
    audience of ``allowed``. In the order of the settings'
    ``audiences``, each once. Nothing to name: ``invalid_target`` (descriptions never echo)."""
    known = [*settings.audiences, settings.userinfo_audience]
    permitted = set(allowed) & set(known)
    if requested:
        if not set(requested) <= set(known):
            raise invalid_target("A requested audience is unknown.")
        if not set(requested) <= permitted:
            raise invalid_target("A requested audience is not allowed.")
        chosen = set(requested)
    else:
        chosen = permitted
    if not chosen:
        raise invalid_target("There is no audience this token may name.")
    return [audience for audience in known if audience in chosen]


def app_audiences(settings: Settings, client: RegisteredClient | None) -> frozenset[str]:
    """What a user's token may name: a registered app client's audiences, else the settings'."""
    if client is not None:
        return client.audiences
    return frozenset(settings.default_app_audiences)


def session_audiences(settings: Settings, stored: Sequence[str] | None) -> frozenset[str]:
    """A session's audiences; a session from before audiences were stored has the app default."""
    return frozenset(stored if stored is not None else settings.default_app_audiences)


# --- scopes --------------------------------------------------------------------------------------


def scopes_within(requested: frozenset[str] | None, allowed: Collection[str]) -> list[str]:
    """The token's scopes: ``requested``, which must be within ``allowed``, or all of ``allowed``;
    none at all is ``invalid_scope`` (a service token for nothing is no use to anyone)."""
    if requested is not None and not requested <= set(allowed):
        raise OAuthError("invalid_scope", "The requested scope exceeds the scope allowed.")
    chosen = sorted(requested if requested is not None else allowed)
    if not chosen:
        raise OAuthError("invalid_scope", "No scope can be granted.")
    return chosen


# --- the caller ------------------------------------------------------------------------------


def service_client(caller: TokenCaller) -> RegisteredClient:
    """The registered service the caller authenticated as: 401 ``invalid_client`` without an
    authentication, 400 ``unauthorized_client`` for any other client (an app, a configured one)."""
    if not caller.authenticated:
        raise clients.invalid_client()
    client = caller.registered
    if client is not None and client.disabled:
        raise clients.invalid_client()
    if client is None or client.kind != "service":
        raise OAuthError("unauthorized_client", "This grant is for registered service clients.")
    return client


# --- client credentials (RFC 6749 §4.4) ----------------------------------------------------------


async def client_credentials(
    svc: Services,
    client: RegisteredClient,
    *,
    scope: frozenset[str] | None,
    audiences: Collection[str],
) -> IssuedToken:
    """A service's own token: its allowed scopes (or those requested of them), its allowed
    audiences (or those requested of them). A scope the settings no longer know is not given."""
    settings = svc.settings
    scopes = scopes_within(scope, client.scopes & settings.known_scopes)
    target = audiences_for(settings, audiences, client.audiences)
    key = await svc.keys.signing_key()
    grant = AccessGrant(
        client.client_id,
        None,
        client.client_id,
        scopes,
        target,
        ttl=settings.service_token_ttl,
    )
    signed = issue_access_token(key, settings, grant, svc.clock())
    svc.metrics.tokens_issued.labels(CLIENT_CREDENTIALS).inc()
    return IssuedToken(signed.token, signed.expires_in, " ".join(scopes))


# --- token exchange (RFC 8693) -------------------------------------------------------------------


async def exchange(
    svc: Services,
    client: RegisteredClient,
    subject_token: str,
    *,
    audiences: Collection[str],
    scope: frozenset[str] | None,
) -> IssuedToken:
    """A token for ``client`` to call ``audiences`` for the user of ``subject_token``, a token
    the client itself was called with (it names the client's ``resource``)."""
    settings = svc.settings
    if client.resource is None or client.resource not in settings.audiences:
        raise OAuthError(
            "unauthorized_client", "The client serves no audience; it cannot exchange tokens."
        )
    target = audiences_for(settings, audiences, client.audiences)
    if settings.self_audience in target:
        # The auth service's own routes act on the user's account (sessions, sign-out): a
        # service acting for a user has no business there, whatever else it may call.
        raise OAuthError("invalid_target", "A token exchange cannot name the auth service.")
    subject = await _subject(svc, client.resource, subject_token)
    scopes = scopes_within(scope, subject.scopes & client.scopes)
    key = await svc.keys.signing_key()

    async def attempt() -> SignedAccessToken:
        return await _sign_exchanged(svc, key, client, subject, target=target, scopes=scopes)

    signed = await revocation.after_cut_off(attempt, svc.sleep)
    svc.metrics.tokens_issued.labels("token_exchange").inc()
    return IssuedToken(signed.token, signed.expires_in, " ".join(scopes))


def _grant_error(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description)


async def _subject(svc: Services, resource: str, token: str) -> AccessPrincipal:
    """The subject token, verified as the service of ``resource`` verifies it; it must be a
    user's token (it has a session: a login's, or an exchanged one's)."""
    try:
        principal = await verifier_for(svc, resource).verify(token)
    except WrongAudienceError:
        raise _grant_error("The subject token is not meant for this client.") from None
    except GatepassError:
        raise _grant_error("The subject token is not valid.") from None
    if principal.sid is None:
        raise _grant_error("The subject token is not a user's token.")
    return principal


async def _sign_exchanged(
    svc: Services,
    key: SigningMaterial,
    client: RegisteredClient,
    subject: AccessPrincipal,
    *,
    target: list[str],
    scopes: list[str],
) -> SignedAccessToken:
    """One attempt (see :func:`revocation.after_cut_off`): the subject token still counts under
    the user's shared lock (not revoked, its user enabled, its session live), then sign."""
    now = svc.clock()
    if int(subject.exp) <= int(now.timestamp()):
        raise _grant_error("The subject token has expired.")
    async with svc.sessions() as db:
        user = await revocation.user_to_sign_for(db, subject.sub)
        if user is None or user.disabled:
            raise _grant_error("The subject token is not valid.")
        if await revocation.is_revoked(db, dict(subject.claims), now):
            raise _grant_error("The subject token has been revoked.")
        revocation.check_cut_off(user, now)
        grant = AccessGrant(
            subject.sub,
            subject.sid,
            client.client_id,
            scopes,
            target,
            act=acting(client.client_id, subject.claims.get("act")),
            ttl=svc.settings.service_token_ttl,
            not_after=int(subject.exp),
        )
        return issue_access_token(key, svc.settings, grant, now)


def acting(client_id: str, previous: object) -> dict[str, Any]:
    """The ``act`` claim (RFC 8693 §4.1): the acting service, the earlier actors inside it."""
    if isinstance(previous, Mapping):
        return {"sub": client_id, "act": dict(previous)}
    return {"sub": client_id}


def verifier_for(svc: Services, audience: str) -> Verifier:
    """The verifier of the service whose audience is ``audience`` (a configured one): the edges'
    rules, this service's published keys (:mod:`auth_service.verification`)."""
    return svc.audience_verifiers[audience]


async def verify_issued(svc: Services, token: str) -> AccessPrincipal:
    """A token this service signed, verified for whichever configured audience it names (its own
    first): what ``/introspect`` and ``/revoke`` take, now that a token may name a single edge.
    Raises the ``TokenError`` of the last attempt."""
    audiences = [svc.settings.self_audience, *svc.settings.audiences]
    for audience in dict.fromkeys(audiences):
        try:
            return await verifier_for(svc, audience).verify(token)
        except WrongAudienceError:
            continue
    raise WrongAudienceError


# --- service tokens ------------------------------------------------------------------------------


def is_service_token(principal: AccessPrincipal) -> bool:
    """A service's own token (client credentials): no session, no actor, ``sub`` its client id.
    A client id never starts with ``usr_``, so no user id equals one."""
    return (
        principal.sid is None
        and "act" not in principal.claims
        and principal.client_id is not None
        and principal.sub == principal.client_id
    )


async def service_token_revoked(
    db: AsyncSession, principal: AccessPrincipal, now: datetime
) -> bool:
    """Whether the issuer's own state says a service token no longer counts: its client is no
    enabled registered service any more, the token was revoked alone (``jti``), or everything
    its client held was (the ``user`` event for its id a disable records, see ``registry``)."""
    client = await registry.find(db, principal.sub)
    if client is None or client.disabled or client.kind != "service":
        return True
    if principal.jti is not None and await revocation.is_jti_revoked(db, principal.jti, now):
        return True
    issued = datetime.fromtimestamp(int(principal.iat), now.tzinfo)
    cut = await db.scalar(
        select(RevocationEvent.id)
        .where(
            RevocationEvent.kind == "user",
            RevocationEvent.value == principal.sub,
            RevocationEvent.not_before > issued,
            RevocationEvent.expires_at > now,
        )
        .limit(1)
    )
    return cut is not None

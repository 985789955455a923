"""Calling other services: with the edge's own token, or for the user who called it.

One :class:`ServiceCalls` an app, built by :func:`gatepass.edge.edge_app`'s lifespan
(:func:`open_service_calls`) and reached by the :data:`Calls` dependency::

    @router.post("/messages")
    async def send(draft: Draft, user: Sender, request: Request, calls: Calls) -> ...:
        auth = calls.for_user(request, "video", "video:read")  # the user's token, exchanged
        answer = await calls.get(f"{video_url}/videos/{draft.video_id}", auth=auth)

    auth = calls.as_service("mail", "mail:notify")  # a token of the service's own
    await calls.post(f"{mail_url}/notifications", auth=auth, json={...})

- ``as_service(audience, *scopes)``: a client-credentials token, one
  :class:`~gatepass.core.oauth.ServiceTokens` cache per (audience, scopes), renewed ahead;
- ``for_user(request_or_token, audience, *scopes)``: the caller's token exchanged (RFC 8693),
  cached per (token, audience, scopes) (:class:`~gatepass.core.oauth.Exchanger`);
- ``get`` is idempotent: a network error, a timeout or a 502/503/504 is retried (``retries``
  times, after 50 ms then 100 ms..., jittered); ``post`` is tried once unless told
  ``idempotent=True``. Each attempt is bounded by ``timeout`` (``CALL_TIMEOUT``).
- A call gets its token once, before its first attempt, and sends every attempt with it: a
  retried call costs the token endpoint nothing more. If the peer answers 401 (the token was
  revoked since it was issued: its client disabled and enabled again, its signing key revoked),
  the token is handed back to its cache, which forgets it unless it is younger than
  :data:`~gatepass.core.oauth.REFUSAL_MIN_AGE`; then the call is sent once more with a new
  one, whatever its method (the peer refused it before doing anything).
- An answer below 500 is returned as it is (the route decides what a 404 there means). A network
  error, a timeout or a 5xx once the attempts are spent, and a token the token endpoint would not
  give, raise :class:`PeerUnavailableError`: a 503 with ``Retry-After`` naming the peer, never a
  stack trace. Without an identity (``CLIENT_ID`` and a key or a secret), plain calls work and
  ``as_service``/``for_user`` raise it, saying so.
- A refused exchange that says "this user may not" is the user's answer, not an outage, and is
  not worth a retry: :class:`ExchangeRefusedError`. ``invalid_grant`` (the user's token is no
  longer good at the issuer: its session ended meanwhile) is 401 ``invalid_token``;
  ``invalid_scope`` or ``invalid_target`` is 403 ``insufficient_scope`` naming the scopes asked
  for. Both are the edge's own answers (its realm, counted as its rejections). ``for_user`` with
  a request whose token lacks a scope asked for answers that 403 at once, without asking the
  issuer (the exchange could only fail). Any other refusal (``invalid_client``,
  ``unauthorized_client``...: this service's configuration) stays a 503.
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Request

from gatepass import challenges
from gatepass.core.clock import Clock, Sleep, system_clock
from gatepass.core.errors import TokenEndpointError, TokenError, TokenRequestError
from gatepass.core.oauth import Exchanger, ServiceTokens, TokenAuth, TokenEndpoint
from gatepass.core.principal import AccessPrincipal
from gatepass.fastapi import PRINCIPAL_SCOPE_KEY, EdgeAuth, edge_auth
from gatepass.problems import ProblemError
from gatepass.settings import EdgeAuthSettings

__all__ = [
    "Calls",
    "ExchangeRefusedError",
    "PeerUnavailableError",
    "ServiceCalls",
    "attach_calls",
    "calls_of",
    "open_service_calls",
    "service_calls",
]

log = logging.getLogger("gatepass.calls")

_STATE_ATTRIBUTE = "gatepass_service_calls"
_RETRIED_STATUSES = frozenset({502, 503, 504})
_BACKOFF_BASE = 0.05  # seconds before the first retry of a call (then 0.1, 0.2...)
RETRY_AFTER = 5
"""Seconds a client is told to wait after a :class:`PeerUnavailableError`."""
DEFAULT_REALM = "gatepass"
"""The challenges' realm for a refused exchange of a token given as a string, if not told."""
_SCOPE_REFUSALS = frozenset({"invalid_scope", "invalid_target"})  # RFC 6749 5.2, RFC 8707 2


class PeerUnavailableError(ProblemError):
    """Another service this request needs could not be reached: 503 ``peer_unavailable``."""

    status = 503
    code = "peer_unavailable"
    title = "Service unavailable"

    def __init__(self, peer: str, detail: str | None = None) -> None:
        self.peer = peer
        super().__init__(
            detail or f"The {peer} service is not available right now.",
            headers={"retry-after": str(RETRY_AFTER)},
            extra={"peer": peer},
        )


class ExchangeRefusedError(ProblemError):
    """The issuer would not exchange the user's token because of the user: 401 ``invalid_token``
    (``invalid_grant``: their token is no longer good) or 403 ``insufficient_scope``
    (``invalid_scope``, ``invalid_target``: they may not be acted for there). ``error`` is the
    token endpoint's code. The problem, challenge included, is the edge's own (``answer``)."""

    def __init__(self, answer: ProblemError, error: str) -> None:
        super().__init__(
            answer.detail,
            status=answer.status,
            code=answer.code,
            title=answer.title,
            headers=answer.headers,
            extra=answer.extra,
        )
        self.error = error


class _RefusedAtIssuerError(TokenError):
    """The user's token, accepted here, was refused by its issuer on exchange (``invalid_grant``):
    its session ended, or its user was disabled, before this edge heard of it."""

    reason = "refused_by_issuer"
    description = "The access token is no longer valid (its session may have ended)."


class _UserTokenAuth(TokenAuth):
    """The user's token exchanged, with what to answer the user if the issuer refuses it: the
    edge's answers when the call came with a request (``edge``), else answers in ``realm``."""

    def __init__(
        self,
        token: Callable[[], Awaitable[str]],
        audience: str,
        refused: Callable[[str], bool],
        *,
        scopes: frozenset[str],
        edge: EdgeAuth | None,
        realm: str,
    ) -> None:
        super().__init__(token, audience, refused)
        self.scopes = scopes
        self.edge = edge
        self.realm = realm

    def refusal(self, error: str) -> ExchangeRefusedError | None:
        """The answer to an exchange refused with ``error``, if it is the user's (else ``None``)."""
        if error == "invalid_grant":
            return ExchangeRefusedError(self._invalid_token(), error)
        if error in _SCOPE_REFUSALS:
            return ExchangeRefusedError(self._insufficient_scope(), error)
        return None

    def _invalid_token(self) -> ProblemError:
        refused = _RefusedAtIssuerError()
        if self.edge is None:
            return challenges.problem(refused, self.realm)
        self.edge.verifier.stats.rejected(refused.reason)
        return self.edge.problem(refused)

    def _insufficient_scope(self) -> ProblemError:
        if self.edge is None:
            return challenges.insufficient_scope(self.scopes, self.realm)
        return self.edge.insufficient_scope(self.scopes)


class _Bearer(httpx.Auth):
    """``Authorization: Bearer`` with a token already in hand: every attempt of one call."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        request.headers["authorization"] = f"Bearer {self._token}"
        yield request

    def __repr__(self) -> str:
        return "_Bearer()"


class ServiceCalls:
    """Calls from this service to others, with tokens (see the module's documentation).

    ``endpoint``: the issuer's token endpoint with this service's identity (``None``: it has
    none). ``client`` is used as it is (its owner closes it); each attempt is bounded by
    ``timeout``. ``realm``: the challenges' realm when an exchange of a token given as a string
    is refused (with a request, the edge's own).
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        endpoint: TokenEndpoint | None = None,
        timeout: float = 3.0,
        retries: int = 2,
        exchange_capacity: int = 10_000,
        realm: str = DEFAULT_REALM,
        clock: Clock = system_clock,
        sleep: Sleep = asyncio.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.client = client
        self.endpoint = endpoint
        self.timeout = timeout
        self.retries = retries
        self.realm = realm
        self._clock, self._sleep, self._random = clock, sleep, random
        self._service_tokens: dict[tuple[str, tuple[str, ...]], ServiceTokens] = {}
        self._exchanger = (
            None
            if endpoint is None
            else Exchanger(endpoint, capacity=exchange_capacity, clock=clock)
        )

    @property
    def has_identity(self) -> bool:
        """Whether this service can get tokens of its own (``as_service``, ``for_user``)."""
        return self.endpoint is not None

    # -- tokens -----------------------------------------------------------------------------

    def service_tokens(self, audience: str, *scopes: str) -> ServiceTokens:
        """The one cache of this service's own token for ``audience`` with ``scopes``."""
        if self.endpoint is None:
            raise _no_identity(audience)
        key = (audience, tuple(sorted(set(scopes))))
        tokens = self._service_tokens.get(key)
        if tokens is None:
            tokens = ServiceTokens(
                self.endpoint, audience=[audience], scope=key[1], clock=self._clock
            )
            self._service_tokens[key] = tokens
        return tokens

    def as_service(self, audience: str, *scopes: str) -> httpx.Auth:
        """Call ``audience`` as this service (a client-credentials token with ``scopes``)."""
        return self.service_tokens(audience, *scopes).auth()

    def for_user(self, request_or_token: Request | str, audience: str, *scopes: str) -> httpx.Auth:
        """Call ``audience`` for the user whose token came with ``request`` (or this token):
        the token exchanged for one with ``scopes``, naming this service as the actor.

        With a request whose token was checked at the door (:class:`~gatepass.GatepassRoute`)
        and lacks one of ``scopes``: :class:`ExchangeRefusedError` (403) at once, the issuer
        not asked (it grants no scope the user's token lacks)."""
        exchanger = self._exchanger
        if exchanger is None:
            raise _no_identity(audience)
        required = frozenset(scopes)
        edge = None
        if isinstance(request_or_token, str):
            subject = request_or_token
        else:
            edge = edge_auth(request_or_token)
            subject = edge.presented_token(request_or_token)
            principal = request_or_token.scope.get(PRINCIPAL_SCOPE_KEY)
            if isinstance(principal, AccessPrincipal) and not required <= principal.scopes:
                raise ExchangeRefusedError(edge.insufficient_scope(required), "invalid_scope")

        async def token() -> str:
            return await exchanger.get(subject, audience=audience, scope=scopes)

        def refused(token: str) -> bool:
            return exchanger.refused(subject, audience=audience, scope=scopes, token=token)

        return _UserTokenAuth(
            token, audience, refused, scopes=required, edge=edge, realm=self.realm
        )

    # -- calls ------------------------------------------------------------------------------

    async def get(
        self,
        url: str,
        *,
        auth: httpx.Auth | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """``GET url``, retried (it is idempotent); :class:`PeerUnavailableError` on failure."""
        return await self._call("GET", url, auth, retry=True, params=params, headers=headers)

    async def post(
        self,
        url: str,
        *,
        auth: httpx.Auth | None = None,
        json: Any = None,
        idempotent: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """``POST url`` with a JSON body, tried once unless ``idempotent``."""
        return await self._call("POST", url, auth, retry=idempotent, json=json, headers=headers)

    async def aclose(self) -> None:
        """Cancel the token requests in flight (the client is its owner's to close)."""
        for tokens in self._service_tokens.values():
            await tokens.aclose()
        if self._exchanger is not None:
            await self._exchanger.aclose()

    async def _call(
        self, method: str, url: str, auth: httpx.Auth | None, *, retry: bool, **options: Any
    ) -> httpx.Response:
        if not isinstance(auth, TokenAuth):
            return await self._send(
                method, url, auth, peer=httpx.URL(url).host, retry=retry, options=options
            )
        peer = auth.audience
        # The token first (its own timeout and retries), once: every attempt carries it.
        token = await self._token(auth, peer)
        response = await self._send(
            method, url, _Bearer(token), peer=peer, retry=retry, options=options
        )
        if response.status_code == 401 and auth.refused(token):
            # Refused, and forgotten: revoked since it was issued (its client disabled and
            # enabled again, say). The peer refused it before doing anything, so one more try,
            # with a new token, is safe for any method.
            log.info(
                "a peer refused this service's token: trying once with a new one",
                extra={"peer": peer, "method": method},
            )
            token = await self._token(auth, peer)
            response = await self._send(
                method, url, _Bearer(token), peer=peer, retry=retry, options=options
            )
        return response

    async def _send(
        self,
        method: str,
        url: str,
        auth: httpx.Auth | None,
        *,
        peer: str,
        retry: bool,
        options: dict[str, Any],
    ) -> httpx.Response:
        """The attempts of one call with one token: an answer below 500, or
        :class:`PeerUnavailableError`."""
        attempts = self.retries + 1 if retry else 1
        for attempt in range(attempts):
            try:
                async with asyncio.timeout(self.timeout):
                    response = await self.client.request(
                        method, url, auth=auth, timeout=self.timeout, **options
                    )
            except TimeoutError:
                outcome = "timeout"
            except httpx.TransportError as exc:
                outcome = "timeout" if isinstance(exc, httpx.TimeoutException) else "network_error"
            else:
                if response.status_code < 500:
                    return response
                outcome = f"status_{response.status_code}"
                if response.status_code not in _RETRIED_STATUSES:
                    attempts = attempt + 1
            log.warning(
                "a call to another service failed",
                extra={"peer": peer, "method": method, "outcome": outcome, "attempt": attempt + 1},
            )
            if attempt + 1 >= attempts:
                break
            backoff = _BACKOFF_BASE * 2.0**attempt
            await self._sleep(backoff * (0.5 + 0.5 * self._random()))
        raise PeerUnavailableError(peer)

    async def _token(self, auth: TokenAuth, peer: str) -> str:
        try:
            return await auth.token()
        except TokenRequestError as exc:
            refusal = auth.refusal(exc.error) if isinstance(auth, _UserTokenAuth) else None
            if refusal is None:
                raise self._token_failed(peer, exc) from None
            # invalid_target is this service's configuration (an audience it may not name).
            level = logging.WARNING if exc.error == "invalid_target" else logging.INFO
            log.log(
                level,
                "the issuer refused to exchange the user's token",
                extra={"peer": peer, "error": exc.error, "status": refusal.status},
            )
            raise refusal from None
        except TokenEndpointError as exc:
            raise self._token_failed(peer, exc) from None

    @staticmethod
    def _token_failed(peer: str, exc: TokenEndpointError) -> PeerUnavailableError:
        log.warning(
            "no token to call another service",
            extra={"peer": peer, "error": exc.error, "reason": exc.reason},
        )
        return PeerUnavailableError(
            peer, f"The {peer} service cannot be called right now: no token for it."
        )


def _no_identity(peer: str) -> PeerUnavailableError:
    return PeerUnavailableError(
        peer,
        f"This service has no identity configured (client id and key or secret): it cannot "
        f"call the {peer} service with a token.",
    )


# -- the app's ServiceCalls -------------------------------------------------------------------


@asynccontextmanager
async def open_service_calls(
    settings: EdgeAuthSettings,
    *,
    client: httpx.AsyncClient | None = None,
    clock: Clock = system_clock,
    sleep: Sleep = asyncio.sleep,
) -> AsyncIterator[ServiceCalls]:
    """The app's :class:`ServiceCalls`, from settings: with the identity they name (the key file
    is read here: :class:`~gatepass.settings.ConfigError` if it cannot be), on ``client`` if one
    is given (tests route everything through one transport), else on a client of its own with
    the call timeout, closed on the way out."""
    identity = await asyncio.to_thread(settings.client_identity)
    own = client is None
    if client is None:
        # Building a client reads CA certificates from disk: keep that off the event loop.
        client = await asyncio.to_thread(httpx.AsyncClient, timeout=settings.call_timeout)
    endpoint = None
    if identity is not None:
        endpoint = TokenEndpoint(
            client,
            issuer=settings.issuer,
            identity=identity,
            token_url=settings.token_url,
            clock=clock,
            timeout=settings.fetch_timeout,
            retries=settings.call_retries,
            sleep=sleep,
        )
    calls = ServiceCalls(
        client,
        endpoint=endpoint,
        timeout=settings.call_timeout,
        retries=settings.call_retries,
        realm=settings.effective_realm,
        clock=clock,
        sleep=sleep,
    )
    try:
        yield calls
    finally:
        await calls.aclose()
        if own:
            await client.aclose()


def attach_calls(app: FastAPI, calls: ServiceCalls | None) -> None:
    """Make ``calls`` the app's, for :data:`Calls` (``None``: gone, the lifespan has ended)."""
    setattr(app.state, _STATE_ATTRIBUTE, calls)


def calls_of(app: FastAPI) -> ServiceCalls:
    calls = getattr(app.state, _STATE_ATTRIBUTE, None)
    if not isinstance(calls, ServiceCalls):
        raise RuntimeError(
            "no ServiceCalls on this app: build it with gatepass.edge.edge_app (its lifespan "
            "opens them), or attach_calls(app, calls) in your own lifespan"
        )
    return calls


def service_calls(request: Request) -> ServiceCalls:
    """The dependency: the app's :class:`ServiceCalls`."""
    return calls_of(request.app)


Calls = Annotated[ServiceCalls, Depends(service_calls)]
"""Calls to other services: ``async def route(calls: Calls)``."""

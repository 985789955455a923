"""FastAPI wiring: an ``Annotated`` principal dependency, scope checks, and the HTTP answers.

An app builds one :class:`EdgeAuth` in its factory, installs it, and runs it in its lifespan::

    auth = EdgeAuth.from_settings(settings)
    app = FastAPI(lifespan=auth.lifespan)
    auth.install(app)

    @app.get("/inbox")
    async def inbox(user: Annotated[AccessPrincipal, Depends(require_scopes("mail:read"))]): ...

Routes reach the instance through ``request.app.state``, so nothing is built at import time and the
dependency aliases below are plain module constants.

Verification errors become HTTP through :mod:`gatepass.challenges`, the RFC 6750 vocabulary the
auth service shares (bodies as RFC 9457 problem details): a bad token is 401 ``invalid_token``, no
token is a bare 401 challenge, a missing scope is 403 ``insufficient_scope``, two tokens are 400
``invalid_request``, and no usable keys is 503 with ``Retry-After``, never 401.

Callers are users or services (:attr:`AccessPrincipal.is_service`): :func:`require_scopes` lets
both in, :func:`require_user` and :func:`require_service` only one kind, and the other gets 403
``caller_not_allowed``.

:meth:`EdgeAuth.from_settings` also follows the issuer's revocation feed when its discovery lists
one (:mod:`gatepass.core.feed`): a revoked token is refused on its next request, cached or not.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Annotated

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client.registry import CollectorRegistry

from gatepass import challenges
from gatepass.core.bearer import BearerHeader, BearerHeaderOrCookie, TokenSource, checked_token
from gatepass.core.clock import Clock, Sleep, system_clock
from gatepass.core.errors import CallerKind, GatepassError
from gatepass.core.feed import RevocationFeed
from gatepass.core.keyset import RemoteKeySet
from gatepass.core.principal import AccessPrincipal
from gatepass.core.revocations import DenySet
from gatepass.core.tokencache import TokenCache
from gatepass.core.verifier import Check, Verifier
from gatepass.problems import PROBLEM_JSON, ProblemError
from gatepass.settings import EdgeAuthSettings
from gatepass.stats import KeySetState, register_metrics

_STATE_ATTRIBUTE = "gatepass_edge_auth"
_SCOPES_ATTRIBUTE = "__gatepass_scopes__"
_CALLER_ATTRIBUTE = "__gatepass_caller__"

PRINCIPAL_SCOPE_KEY = "gatepass.core.principal"
"""Where :class:`~gatepass.routing.GatepassRoute` leaves the principal it checked at the door, in
the ASGI scope (server-side: a client cannot put anything there)."""


class EdgeAuth:
    """Token verification for one app: a key set, a verifier, where tokens come from, a realm,
    and the revocation feed the verifier's deny-set follows (none: revocations are not followed).
    """

    def __init__(
        self,
        keyset: RemoteKeySet,
        verifier: Verifier,
        *,
        realm: str,
        source: TokenSource | None = None,
        feed: RevocationFeed | None = None,
    ) -> None:
        self.keyset = keyset
        self.verifier = verifier
        self.realm = realm
        self.source = source or BearerHeader()
        self.feed = feed

    @classmethod
    def from_settings(
        cls,
        settings: EdgeAuthSettings,
        *,
        client: httpx.AsyncClient | None = None,
        registry: CollectorRegistry | None = None,
        clock: Clock = system_clock,
        sleep: Sleep = asyncio.sleep,
        checks: Iterable[Check] = (),
    ) -> EdgeAuth:
        """Everything from settings. ``client``: share one (tests pass a mock transport);
        ``clock`` and ``sleep``: the time the verifier reads and the background loops wait on
        (tests pass a :class:`~gatepass.testing.ManualClock` and its ``sleep``)."""
        keyset = RemoteKeySet(
            client,
            issuer=settings.issuer,
            jwks_url=settings.jwks_url,
            config=settings.keyset_config(),
            snapshot_path=settings.last_known_good_path,
            clock=clock,
            sleep=sleep,
        )
        feed_config = settings.feed_config()
        denyset = DenySet()
        verifier = Verifier(
            keyset,
            issuer=settings.issuer,
            audience=settings.audience,
            algorithms=settings.algorithms,
            leeway=settings.leeway,
            max_token_bytes=settings.max_token_bytes,
            cache=TokenCache(settings.token_cache_size) if settings.token_cache_size else None,
            stats=keyset.stats,
            clock=clock,
            checks=checks,
            revocations=denyset if feed_config.enabled else None,  # off: nothing to check
        )
        feed = RevocationFeed(
            keyset,
            denyset,
            token=settings.feed_bearer,
            endpoint=settings.feed_url,
            config=feed_config,
            cache=verifier.cache,
            clock=clock,
            sleep=sleep,
        )
        auth = cls(
            keyset, verifier, realm=settings.effective_realm, source=_source(settings), feed=feed
        )
        if registry is not None:
            register_metrics(registry, auth.readiness)
        return auth

    # -- wiring -----------------------------------------------------------------------------

    def install(self, app: FastAPI) -> None:
        """Make this the app's verifier, and make sure its errors render as problem+json."""
        setattr(app.state, _STATE_ATTRIBUTE, self)
        if ProblemError not in app.exception_handlers:
            app.add_exception_handler(ProblemError, _render_problem)

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        """``FastAPI(lifespan=auth.lifespan)``, or ``async with auth.lifespan(app)`` in your own."""
        setattr(app.state, _STATE_ATTRIBUTE, self)
        async with self:
            yield

    async def start(self) -> None:
        """The key set, then the feed (it reads the key set's discovery, on its client)."""
        await self.keyset.start()
        if self.feed is not None:
            await self.feed.start()

    async def aclose(self) -> None:
        if self.feed is not None:
            await self.feed.aclose()
        await self.keyset.aclose()

    async def __aenter__(self) -> EdgeAuth:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def readiness(self) -> KeySetState:
        """The key set's state with the feed's; ``.ready`` is what a ``/readyz`` answers:
        keys usable and, where the issuer lists a revocation feed, caught up with it."""
        state = self.keyset.state()
        if self.feed is None:
            return state
        return dataclasses.replace(state, feed=self.feed.state())

    # -- the request path -------------------------------------------------------------------

    async def authenticate(self, request: Request) -> AccessPrincipal:
        """The caller of ``request``, or a :class:`ProblemError` to answer with."""
        token = self._presented_token(request)
        try:
            return await self.verifier.verify(token)
        except GatepassError as exc:  # counted by the verifier
            raise self.problem(exc) from None

    async def authorize(
        self,
        request: Request,
        required: frozenset[str],
        callers: frozenset[CallerKind] = frozenset(),
    ) -> AccessPrincipal:
        """:meth:`authenticate`, then 403 ``caller_not_allowed`` unless the caller is of each
        kind in ``callers`` (``user``, ``service``), and 403 ``insufficient_scope`` unless every
        scope was granted."""
        principal = await self.authenticate(request)
        self.check_caller(principal, callers)
        if not required <= principal.scopes:
            raise self.insufficient_scope(required)
        return principal

    def check_caller(self, principal: AccessPrincipal, callers: Iterable[CallerKind]) -> None:
        """403 ``caller_not_allowed`` unless ``principal`` is of each kind in ``callers``."""
        for allowed in sorted(callers):
            if principal.is_service != (allowed == "service"):
                raise self.caller_not_allowed(allowed)

    def insufficient_scope(self, required: frozenset[str]) -> ProblemError:
        """The 403 for a token lacking some of ``required`` (counted as a rejection)."""
        self.verifier.stats.rejected("insufficient_scope")
        return challenges.insufficient_scope(required, self.realm)

    def caller_not_allowed(self, allowed: CallerKind) -> ProblemError:
        """The 403 for a token of the other kind (counted as a rejection)."""
        self.verifier.stats.rejected("caller_not_allowed")
        return challenges.caller_not_allowed(allowed, self.realm)

    def presented_token(self, request: Request) -> str:
        """The request's bearer token as sent (a 400 or 401 problem without one usable)."""
        return self._presented_token(request).decode("ascii")

    def problem(self, exc: GatepassError) -> ProblemError:
        """The HTTP answer to a verification error (:func:`gatepass.challenges.problem`)."""
        return challenges.problem(exc, self.realm)

    def _presented_token(self, request: Request) -> bytes:
        """The request's one token (RFC 6750 characters only), or the problem to answer with."""
        try:
            presented = self.source.extract(request.scope)
            token = None if presented is None else checked_token(presented.raw)
        except GatepassError as exc:
            self.verifier.stats.rejected(exc.reason)
            raise self.problem(exc) from None
        if token is None:
            raise self._no_token()
        return token

    def _no_token(self) -> ProblemError:
        self.verifier.stats.rejected("missing_token")
        return challenges.no_token(self.realm)


def _source(settings: EdgeAuthSettings) -> TokenSource:
    if settings.cookie_name is None:
        return BearerHeader()
    return BearerHeaderOrCookie(
        settings.cookie_name,
        csrf_cookie=settings.csrf_cookie_name,
        csrf_header=settings.csrf_header_name,
    )


async def _render_problem(request: Request, exc: Exception) -> Response:
    """Used only if the app has no ProblemError handler (``install_problem_handlers`` has one)."""
    assert isinstance(exc, ProblemError)
    return JSONResponse(
        exc.to_dict(request.url.path),
        status_code=exc.status,
        headers=exc.headers,
        media_type=PROBLEM_JSON,
    )


# -- dependencies ---------------------------------------------------------------------------


def edge_auth(request: Request) -> EdgeAuth:
    """The app's :class:`EdgeAuth` (set by ``install`` or ``lifespan``)."""
    auth = getattr(request.app.state, _STATE_ATTRIBUTE, None)
    if auth is None:
        raise RuntimeError("no EdgeAuth on this app: call auth.install(app) in the app factory")
    assert isinstance(auth, EdgeAuth)
    return auth


def gatepass_scopes(dependency: object) -> frozenset[str] | None:
    """The scopes a gatepass dependency requires (none for :data:`Principal`), or ``None`` if
    ``dependency`` is not one of gatepass's: how :class:`~gatepass.routing.GatepassRoute` finds
    the dependencies it can check at the door."""
    scopes = getattr(dependency, _SCOPES_ATTRIBUTE, None)
    return scopes if isinstance(scopes, frozenset) else None


def gatepass_caller(dependency: object) -> CallerKind | None:
    """The kind of caller a gatepass dependency lets in (``user``, ``service``); ``None`` for
    both kinds, or for a dependency that is not gatepass's."""
    caller = getattr(dependency, _CALLER_ATTRIBUTE, None)
    return "user" if caller == "user" else "service" if caller == "service" else None


def presented_token(request: Request) -> str:
    """The raw bearer token of ``request``, to exchange it for a token that calls another
    service for the same user (:meth:`gatepass.calls.ServiceCalls.for_user`)."""
    return edge_auth(request).presented_token(request)


async def current_principal(request: Request) -> AccessPrincipal:
    """The dependency: ``async`` (a plain ``def`` would run in the threadpool). The principal
    :class:`~gatepass.routing.GatepassRoute` checked at the door if it did, else verified now."""
    checked = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if checked is not None:
        return checked  # type: ignore[no-any-return]
    return await edge_auth(request).authenticate(request)


setattr(current_principal, _SCOPES_ATTRIBUTE, frozenset())

Principal = Annotated[AccessPrincipal, Depends(current_principal)]
"""The caller of the request: ``async def route(user: Principal)``."""


def require_scopes(
    *scopes: str,
) -> Callable[[Request], Awaitable[AccessPrincipal]]:
    """A dependency that answers 403 ``insufficient_scope`` unless every scope was granted.

    Returns the principal, so it can stand in for :data:`Principal`:
    ``user: Annotated[AccessPrincipal, Depends(require_scopes("mail:read"))]``, or
    ``dependencies=[Depends(require_scopes("mail:read"))]`` on a route or router. The same
    scopes give the same dependency, so a test can override ``require_scopes("mail:read")``.
    """
    return _scoped_principal(frozenset(scopes), None)


def require_user(*scopes: str) -> Callable[[Request], Awaitable[AccessPrincipal]]:
    """:func:`require_scopes`, for users only: a service calling with its own token (client
    credentials) gets 403 ``caller_not_allowed``. A token a service exchanged for a user is the
    user's, and gets in (its :attr:`~AccessPrincipal.act` names the service)."""
    return _scoped_principal(frozenset(scopes), "user")


def require_service(*scopes: str) -> Callable[[Request], Awaitable[AccessPrincipal]]:
    """:func:`require_scopes`, for services calling with a token of their own only: a user's
    token, exchanged or not, gets 403 ``caller_not_allowed``."""
    return _scoped_principal(frozenset(scopes), "service")


@functools.cache
def _scoped_principal(
    required: frozenset[str], caller: CallerKind | None
) -> Callable[[Request], Awaitable[AccessPrincipal]]:
    # Not a dependency on top of Principal: FastAPI resolves each level of dependencies with
    # its general machinery, which costs more per request than a cached verification.
    callers: frozenset[CallerKind] = frozenset() if caller is None else frozenset({caller})

    async def scoped_principal(request: Request) -> AccessPrincipal:
        principal = await current_principal(request)
        if callers:
            edge_auth(request).check_caller(principal, callers)
        if not required <= principal.scopes:
            raise edge_auth(request).insufficient_scope(required)
        return principal

    setattr(scoped_principal, _SCOPES_ATTRIBUTE, required)
    setattr(scoped_principal, _CALLER_ATTRIBUTE, caller)
    return scoped_principal


__all__ = [
    "PRINCIPAL_SCOPE_KEY",
    "EdgeAuth",
    "Principal",
    "current_principal",
    "edge_auth",
    "gatepass_caller",
    "gatepass_scopes",
    "presented_token",
    "require_scopes",
    "require_service",
    "require_user",
]

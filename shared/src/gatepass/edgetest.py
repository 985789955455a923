"""Test helpers for edge services built with :func:`gatepass.edge.edge_app`.

Beside :mod:`gatepass.testing` (the issuer in a box), four ways to test an edge:

- in-process, through ``httpx.ASGITransport``, with its lifespan running and a
  :class:`~gatepass.testing.FakeIssuer` answering discovery and the JWKS. :func:`edge_fixtures`
  makes the fixtures of an edge's ``conftest.py``::

      issuer, mail = edge_fixtures(create_app, MailSettings, name="mail")

      async def test_inbox(mail: EdgeUnderTest) -> None:
          await mail.http.get("/inbox", headers=mail.bearer("alice", "mail:read"))

- the access tests every edge shares (:class:`EdgeAccessTests`): the edge gives its table of
  routes and the scopes they need, the tests prove who gets in::

      class TestMailAccess(EdgeAccessTests):
          kit = EdgeKit(create_app, MailSettings, audience="mail", scopes=..., routes=(
              Route("GET", "/inbox", "mail:read"), ...))

- several edges side by side in-process, for the calls between them (:class:`Peers`): each
  with a client identity, all reaching each other and the issuer's token endpoint through one
  transport that routes by host (:class:`Hosts`), where a test takes a service down or holds
  its answers::

      class Pair(Peers):
          mail = Peer("mail", create_app, MailSettings, MAIL_URL, {"video_url": VIDEO_URL})
          video = Peer("video", create_video_app, VideoSettings, VIDEO_URL, {...})

      async with Pair.run(tmp_path) as pair:
          pair.down(VIDEO_URL)

- as a real child process (``python -m <module> --host 127.0.0.1 --port N``), to check the
  console entry point: :func:`child_service` waits until uvicorn says it is listening.

This module needs pytest (the fixtures and the shared tests); :mod:`gatepass.testing` does not.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import (
    AbstractAsyncContextManager,
    AsyncExitStack,
    asynccontextmanager,
    contextmanager,
)
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self, overload

import httpx
import pytest
from fastapi import FastAPI

from gatepass.launch import (
    READY_TIMEOUT,
    Service,
    base_url,
    clean_env,
    free_port,
    python_service,
)
from gatepass.problems import PROBLEM_JSON
from gatepass.settings import EdgeAuthSettings
from gatepass.testing import FakeIssuer

__all__ = [
    "ChildService",
    "EdgeAccessTests",
    "EdgeKit",
    "EdgeUnderTest",
    "Hold",
    "Hosts",
    "Peer",
    "Peers",
    "Route",
    "child_service",
    "edge_fixtures",
    "expect_problem",
    "free_port",
    "run_edge",
    "running_app",
]

LISTENING = "Uvicorn running on"
UNKNOWN_ID = "nobody_has_this_id"  # fills a route's path parameters: a valid id, never found
OVER_THE_BODY_LIMIT = 70_000  # bytes: past the default 64 KiB limit (gatepass.limits)

EdgeFactory = Callable[..., FastAPI]  # create_app(settings, client=...)
SettingsFactory = Callable[..., EdgeAuthSettings]  # the settings class: (issuer=, data_dir=)


@dataclass
class EdgeUnderTest:
    """A running edge app, a client for it, and the issuer whose tokens it accepts."""

    app: FastAPI
    http: httpx.AsyncClient
    issuer: FakeIssuer
    audience: str

    def bearer(self, sub: str, scope: str = "", **claims: Any) -> dict[str, str]:
        """An ``Authorization`` header for ``sub`` with ``scope``, addressed to this edge."""
        token = self.issuer.token(sub=sub, scope=scope, aud=[self.audience], **claims)
        return {"authorization": f"Bearer {token}"}


@asynccontextmanager
async def run_edge(
    create_app: EdgeFactory,
    settings: EdgeAuthSettings,
    issuer: FakeIssuer,
) -> AsyncIterator[EdgeUnderTest]:
    """``create_app(settings, client=<the issuer's mock client>)``, its lifespan running."""
    async with issuer.client() as client:
        app = create_app(settings, client=client)
        async with running_app(app, "http://edge.test") as http:
            yield EdgeUnderTest(app, http, issuer, settings.audience)


@asynccontextmanager
async def running_app(app: FastAPI, base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """``app`` with its lifespan running, and a client for it in-process at ``base_url``."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as http,
    ):
        yield http


def _fresh_edge(
    create_app: EdgeFactory, settings: SettingsFactory, issuer: FakeIssuer, data_dir: Path
) -> AbstractAsyncContextManager[EdgeUnderTest]:
    """The edge with default settings but the issuer's URL and an empty ``data_dir``."""
    return run_edge(create_app, settings(issuer=issuer.issuer, data_dir=data_dir), issuer)


def edge_fixtures(
    create_app: EdgeFactory, settings: SettingsFactory, *, name: str
) -> tuple[Any, Any]:
    """An edge's two fixtures: ``issuer`` and ``name`` (the edge in-process, a fresh data folder).

    The issuer signs with a key generated for the test and keeps real time (the edge's own clock):
    tokens are valid now. A test that sets up the issuer differently (``fail_with``) before the
    edge starts uses :func:`run_edge` itself.
    """

    @pytest.fixture(name="issuer")
    def issuer_fixture() -> FakeIssuer:
        return FakeIssuer(clock=time.time)

    @pytest.fixture(name=name)
    async def edge_fixture(issuer: FakeIssuer, tmp_path: Path) -> AsyncIterator[EdgeUnderTest]:
        async with _fresh_edge(create_app, settings, issuer, tmp_path) as edge:
            yield edge

    return issuer_fixture, edge_fixture


def expect_problem(response: httpx.Response, status: int, code: str | None = None) -> Any:
    """Check ``response`` is a problem+json with ``status`` (and ``code``); return its body."""
    seen = f"{response.status_code} {response.headers.get('www-authenticate', '')} {response.text}"
    assert response.status_code == status, seen
    assert response.headers["content-type"].startswith(PROBLEM_JSON), seen
    body = response.json()
    assert body["status"] == status, seen
    assert code is None or body["code"] == code, seen
    return body


# -- edges side by side ----------------------------------------------------------------------


@dataclass
class Hold:
    """Requests to a held host wait for ``released``; ``arrived`` is set once one is waiting."""

    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)


class Hosts(httpx.AsyncBaseTransport):
    """Each request to the transport of its host. A host with none, or taken ``down``, refuses
    the connection, as a service that is not running; a host in ``held`` keeps each request
    until the test releases it (:class:`Hold`), as a slow service. A test may swap a host's
    transport in ``routes`` (to record what reaches it)."""

    def __init__(self, routes: Mapping[str, httpx.AsyncBaseTransport]) -> None:
        self.routes = dict(routes)
        self.down: set[str] = set()
        self.held: dict[str, Hold] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if host in self.down or host not in self.routes:
            raise httpx.ConnectError("connection refused", request=request)
        hold = self.held.get(host)
        if hold is not None:
            hold.arrived.set()
            await hold.released.wait()
        return await self.routes[host].handle_async_request(request)


@dataclass(frozen=True)
class Peer:
    """An edge to run beside others, declared on a :class:`Peers` subclass; they reach it at
    ``url``. On a running instance the attribute is the edge itself (an :class:`EdgeUnderTest`),
    on the class the peer.

    Its settings are ``settings(issuer=, data_dir=<data folder>/<name>, client_id=<name>,
    client_secret=<name>-secret, **values)``: ``values`` name the other services' URLs (and
    anything else the edge needs); the fake issuer takes any client secret.
    """

    name: str
    create_app: EdgeFactory
    settings: SettingsFactory
    url: str
    values: Mapping[str, Any] = field(default_factory=dict)

    def settings_for(self, issuer: FakeIssuer, data_dir: Path) -> EdgeAuthSettings:
        identity = {"client_id": self.name, "client_secret": f"{self.name}-secret"}
        values = {**identity, **self.values}
        return self.settings(issuer=issuer.issuer, data_dir=data_dir / self.name, **values)

    @overload
    def __get__(self, peers: None, owner: type[Peers]) -> Self: ...

    @overload
    def __get__(self, peers: Peers, owner: type[Peers]) -> EdgeUnderTest: ...

    def __get__(self, peers: Peers | None, owner: type[Peers]) -> Self | EdgeUnderTest:
        return self if peers is None else peers.edges[self.name]


@dataclass
class Peers:
    """Edges in-process, the issuer they all trust (a :class:`~gatepass.testing.FakeIssuer`
    with its token endpoint: it answers client credentials and token exchange, and keeps every
    request), and the transport between them all (:attr:`hosts`).

    An edge's tests declare the edges as :class:`Peer` attributes of a subclass, their own
    first (they start in this order), and run them with :meth:`run`::

        class Pair(Peers):
            mail = Peer("mail", create_app, MailSettings, MAIL_URL, {"video_url": VIDEO_URL})
            video = Peer("video", create_video_app, VideoSettings, VIDEO_URL, {...})

        async with Pair.run(tmp_path) as pair:
            await pair.mail.http.get("/inbox", headers=pair.mail.bearer("usr_bob", "mail:read"))
    """

    edges: dict[str, EdgeUnderTest]  # by Peer.name
    issuer: FakeIssuer
    hosts: Hosts

    @classmethod
    def peers(cls) -> list[Peer]:
        """The peers this class declares, in order."""
        return [value for value in vars(cls).values() if isinstance(value, Peer)]

    @classmethod
    @asynccontextmanager
    async def run(cls, data_dir: Path) -> AsyncIterator[Self]:
        """The declared peers, their lifespans running, their data folders under ``data_dir``.

        Every edge gets one client over :attr:`hosts`, which routes to the issuer and to each
        edge at its ``url``; each edge's :class:`EdgeUnderTest` has a client of its own for
        the test.
        """
        issuer = FakeIssuer(clock=time.time, token_endpoint=True)
        hosts = Hosts({httpx.URL(issuer.issuer).host: issuer.transport()})
        async with AsyncExitStack() as stack:
            client = await stack.enter_async_context(httpx.AsyncClient(transport=hosts))
            built: list[tuple[Peer, FastAPI, str]] = []
            for peer in cls.peers():  # every edge can be reached before any starts
                settings = peer.settings_for(issuer, data_dir)
                app = peer.create_app(settings, client=client)
                hosts.routes[httpx.URL(peer.url).host] = httpx.ASGITransport(app=app)
                built.append((peer, app, settings.audience))
            edges: dict[str, EdgeUnderTest] = {}
            for peer, app, audience in built:
                http = await stack.enter_async_context(running_app(app, peer.url))
                edges[peer.name] = EdgeUnderTest(app, http, issuer, audience)
            yield cls(edges, issuer, hosts)

    def token_grants(self, grant_type: str | None = None) -> list[dict[str, Any]]:
        """The token requests the issuer got so far (of ``grant_type``), oldest first."""
        grants = self.issuer.token_grants
        return [g for g in grants if grant_type is None or g["grant_type"] == grant_type]

    def down(self, url: str) -> None:
        """The service at ``url`` stops answering (connection refused)."""
        self.hosts.down.add(httpx.URL(url).host)

    def up(self, url: str) -> None:
        """The service at ``url`` answers again."""
        self.hosts.down.discard(httpx.URL(url).host)

    def hold(self, url: str) -> Hold:
        """The service at ``url`` answers only once the hold is released (a slow service)."""
        hold = self.hosts.held[httpx.URL(url).host] = Hold()
        return hold


# -- the access tests every edge shares ------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """A protected route of an edge, as its OpenAPI document names it, and the scope it needs.

    ``scope`` None: any valid token gets past the door and the route decides for itself (the
    video edge's delete: a moderator's scope, or the owner's). ``body``: a valid JSON body.
    """

    method: str
    path: str
    scope: str | None
    body: Mapping[str, Any] | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def url(self) -> str:
        """``path`` with each ``{parameter}`` an id that nothing has."""
        return re.sub(r"\{[^}]*\}", UNKNOWN_ID, self.path)

    async def call(self, edge: EdgeUnderTest, headers: Mapping[str, str] | None) -> httpx.Response:
        return await edge.http.request(self.method, self.url, json=self.body, headers=headers)


@dataclass(frozen=True)
class EdgeKit:
    """One edge, as :class:`EdgeAccessTests` sees it: how to build it, and who may call what.

    ``scopes`` is what ``GET /about`` lists; ``routes`` every protected route; ``public`` the
    routes of the edge's own that need no token (the probes, ``/healthz`` and so on, are checked
    anyway).
    """

    create_app: EdgeFactory
    settings: SettingsFactory
    audience: str
    scopes: frozenset[str]
    routes: tuple[Route, ...]
    public: tuple[str, ...] = ("/about",)

    @property
    def scoped(self) -> tuple[Route, ...]:
        """The routes whose scope the door checks."""
        return tuple(route for route in self.routes if route.scope is not None)

    def run(self, issuer: FakeIssuer, data_dir: Path) -> AbstractAsyncContextManager[EdgeUnderTest]:
        return _fresh_edge(self.create_app, self.settings, issuer, data_dir)

    def first(self, method: str, *, with_id: bool) -> Route:
        """The first scoped route of ``method`` with (or without) a path parameter."""
        for route in self.scoped:
            if route.method == method and ("{" in route.path) == with_id:
                return route
        raise LookupError(
            f"{self.audience}: no scoped {method} route {'with' if with_id else 'without'} an id"
        )


def _other_scopes(kit: EdgeKit, needed: str) -> str:
    """Every scope of the edge but ``needed``, and ``needed``'s action at another service."""
    action = needed.partition(":")[2]
    return " ".join([*sorted(kit.scopes - {needed}), f"elsewhere:{action}"])


class EdgeAccessTests:
    """Who gets in, for any edge: subclass it as ``Test<Edge>Access`` with ``kit = EdgeKit(...)``.

    Needs the ``issuer`` fixture (:func:`edge_fixtures` makes it). Each test that takes ``route``
    runs once per protected route, ``scoped`` once per route whose scope the door checks.
    """

    kit: ClassVar[EdgeKit]

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        for name, routes in (("route", self.kit.routes), ("scoped", self.kit.scoped)):
            if name in metafunc.fixturenames:
                metafunc.parametrize(name, routes, ids=str)

    @pytest.fixture
    async def edge(self, issuer: FakeIssuer, tmp_path: Path) -> AsyncIterator[EdgeUnderTest]:
        async with self.kit.run(issuer, tmp_path) as edge:
            yield edge

    async def test_about_is_public_and_names_the_scopes(self, edge: EdgeUnderTest) -> None:
        about = (await edge.http.get("/about")).json()
        assert about["service"] == about["audience"] == self.kit.audience
        assert set(about["scopes"]) == self.kit.scopes
        openapi = edge.app.openapi()  # not served in production (the default): API_DOCS
        assert {route.path for route in self.kit.routes} <= set(openapi["paths"])

    async def test_the_public_routes_need_no_token(self, edge: EdgeUnderTest) -> None:
        for path in self.kit.public:
            assert (await edge.http.get(path)).status_code == 200, path
        assert (await edge.http.get("/healthz")).json() == {"status": "ok"}

    @pytest.mark.parametrize("authorization", [None, "Basic eDp5"], ids=["none", "basic"])
    async def test_no_bearer_token_is_a_bare_challenge(
        self, edge: EdgeUnderTest, route: Route, authorization: str | None
    ) -> None:
        """No ``Authorization``, or another scheme: a challenge that names no error."""
        headers = {"authorization": authorization} if authorization else None
        answer = await route.call(edge, headers)
        expect_problem(answer, 401, "missing_token")
        assert answer.headers["www-authenticate"] == f'Bearer realm="{self.kit.audience}"'

    async def test_a_garbage_token_is_invalid(self, edge: EdgeUnderTest, route: Route) -> None:
        answer = await route.call(edge, {"authorization": "Bearer not.a.token"})
        assert expect_problem(answer, 401, "invalid_token")["reason"] == "malformed"
        challenge = answer.headers["www-authenticate"]
        assert challenge.startswith(f'Bearer realm="{self.kit.audience}"')
        assert 'error="invalid_token"' in challenge

    async def test_a_token_for_another_service_is_refused(self, edge: EdgeUnderTest) -> None:
        route = self.kit.scoped[0]
        token = edge.issuer.token(sub="usr_bob", scope=route.scope, aud=["another-service"])
        answer = await route.call(edge, {"authorization": f"Bearer {token}"})
        assert expect_problem(answer, 401, "invalid_token")["reason"] == "wrong_audience"

    async def test_each_route_needs_its_scope(self, edge: EdgeUnderTest, scoped: Route) -> None:
        assert scoped.scope is not None
        answer = await scoped.call(
            edge, edge.bearer("usr_bob", _other_scopes(self.kit, scoped.scope))
        )
        body = expect_problem(answer, 403, "insufficient_scope")
        assert body["required_scopes"] == [scoped.scope]
        challenge = answer.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge
        assert f'scope="{scoped.scope}"' in challenge

    async def test_a_body_over_the_limit_is_413(self, edge: EdgeUnderTest) -> None:
        route = next(route for route in self.kit.scoped if route.body is not None)
        grown = {
            name: value + "x" * OVER_THE_BODY_LIMIT if isinstance(value, str) else value
            for name, value in (route.body or {}).items()
        }
        headers = edge.bearer("usr_alice", route.scope or "")
        answer = await edge.http.request(route.method, route.url, json=grown, headers=headers)
        expect_problem(answer, 413, "payload_too_large")

    async def test_ready_with_keys_and_a_database(self, edge: EdgeUnderTest) -> None:
        ready = (await edge.http.get("/readyz")).json()
        assert ready["checks"] == {"keys": True, "database": True}
        assert ready["keyset"]["kids"] == [edge.issuer.default_kid]

    async def test_metrics_count_requests_by_route(self, edge: EdgeUnderTest) -> None:
        listing, one = self.kit.first("GET", with_id=False), self.kit.first("GET", with_id=True)
        assert (await listing.call(edge, edge.bearer("usr_bob", listing.scope or ""))).is_success
        await one.call(edge, edge.bearer("usr_bob", one.scope or ""))
        metrics = (await edge.http.get("/metrics")).text
        counted = f'gatepass_edge_http_requests_total{{method="GET",route="{listing.path}",'
        assert f'{counted}status="200"}} 1.0' in metrics
        assert f'route="{one.path}",status="404"' in metrics
        assert "gatepass_edge_jwks_usable 1.0" in metrics

    async def test_unready_and_503_while_the_issuer_is_unreachable(
        self, issuer: FakeIssuer, tmp_path: Path
    ) -> None:
        issuer.fail_with = httpx.ConnectError("connection refused")
        route = self.kit.first("GET", with_id=False)
        async with self.kit.run(issuer, tmp_path) as edge:
            body = expect_problem(await edge.http.get("/readyz"), 503, "not_ready")
            assert body["checks"] == {"keys": False, "database": True}
            assert body["keyset"]["last_fetch_outcome"] is not None
            answer = await route.call(edge, edge.bearer("usr_bob", route.scope or ""))
            expect_problem(answer, 503)
            assert int(answer.headers["retry-after"]) >= 1
            assert (await edge.http.get("/healthz")).status_code == 200


# -- the edge as a process -------------------------------------------------------------------


class ChildService(Service):
    """An edge started by :func:`child_service`; :meth:`output` is what it wrote."""

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The child process itself (:attr:`running` and :attr:`returncode` say the same)."""
        assert self._process is not None, "started by child_service"
        return self._process

    def output(self) -> str:
        return self.run_output()


@contextmanager
def child_service(
    module: str, env: Mapping[str, str], log: Path, *, timeout: float = READY_TIMEOUT
) -> Iterator[ChildService]:
    """``python -m module`` on a free loopback port, until uvicorn listens; stopped on the way out.

    The child gets this environment without any ``GATEPASS_*`` variable, plus ``env``. A child
    that exits first, or is not listening within ``timeout`` seconds, raises
    :class:`~gatepass.launch.ServiceStartError` (a ``RuntimeError``) with its last words.
    """
    port = free_port()
    command = python_service(module, port)
    with ChildService(
        module, command, base_url=base_url(port), log=log, env=clean_env(env)
    ) as child:
        child.wait_for_log(LISTENING, timeout)
        yield child

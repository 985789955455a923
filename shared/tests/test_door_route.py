"""GatepassRoute: what checking at the door changes, and what it must not.

The RFC 6750 answers themselves are tested through both route classes in
``test_fastapi_dependency.py``; here: order, the route left as FastAPI built it, OpenAPI,
overrides, nesting.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel

import gatepass.fastapi
from gatepass import (
    AccessPrincipal,
    EdgeAuth,
    EdgeAuthSettings,
    GatepassRoute,
    Principal,
    current_principal,
    install_problem_handlers,
    require_scopes,
)
from gatepass.fastapi import gatepass_scopes
from gatepass.testing import FakeIssuer, ManualClock

Reader = Annotated[AccessPrincipal, Depends(require_scopes("mail:read"))]
SEND = require_scopes("mail:send")


class Draft(BaseModel):
    to: str
    body: str


async def owner_of(user: Principal) -> str:
    """A dependency of the app's own that needs the caller (nested: FastAPI resolves it)."""
    return user.sub


def build_app(auth: EdgeAuth, route_class: type[APIRoute]) -> FastAPI:
    app = FastAPI(lifespan=auth.lifespan)
    app.router.route_class = route_class
    install_problem_handlers(app)
    auth.install(app)

    @app.post("/messages", dependencies=[Depends(SEND)])
    async def send(draft: Draft, user: Reader) -> dict[str, str]:
        return {"from": user.sub, "to": draft.to}

    @app.get("/with-request")
    async def with_request(request: Request, user: Principal) -> dict[str, str]:
        return {"sub": user.sub, "path": request.url.path}

    @app.get("/sync")
    def sync_route(user: Reader) -> dict[str, str]:
        return {"sub": user.sub}

    @app.get("/clash")
    async def clash(gatepass_request: int, user: Reader) -> dict[str, Any]:
        return {"sub": user.sub, "value": gatepass_request}

    @app.get("/nested")
    async def nested(user: Reader, owner: Annotated[str, Depends(owner_of)]) -> dict[str, str]:
        return {"sub": user.sub, "owner": owner}

    return app


Serve = Callable[[type[APIRoute]], AbstractAsyncContextManager[tuple[FastAPI, Any, EdgeAuth]]]


@pytest.fixture
def serve(issuer: FakeIssuer, clock: ManualClock, client: httpx.AsyncClient) -> Serve:
    """``async with serve(route_class) as (app, http, auth)``: the app above, running."""

    @asynccontextmanager
    async def running(route_class: type[APIRoute]) -> AsyncIterator[tuple[FastAPI, Any, EdgeAuth]]:
        settings = EdgeAuthSettings(issuer=issuer.issuer, audience="mail")
        auth = EdgeAuth.from_settings(settings, client=client, clock=clock)
        app = build_app(auth, route_class)
        async with (
            auth.lifespan(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://mail.test"
            ) as http,
        ):
            yield app, http, auth

    return running


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_the_door_refuses_before_the_body_is_parsed(serve: Serve) -> None:
    async with serve(GatepassRoute) as (_, http, _auth):
        broken = await http.post(
            "/messages", content=b"{not json", headers={"content-type": "application/json"}
        )
        invalid = await http.post("/messages", json={"to": 1})
    # Unauthenticated callers learn nothing about what the route expects.
    assert broken.status_code == invalid.status_code == 401
    async with serve(APIRoute) as (_, http, _auth):
        broken = await http.post(
            "/messages", content=b"{not json", headers={"content-type": "application/json"}
        )
    assert broken.status_code == 400  # FastAPI parses the body before any dependency


async def test_the_routes_answer_the_same(serve: Serve, issuer: FakeIssuer) -> None:
    token = issuer.token(scope="mail:read mail:send", sub="usr_a")
    reader = issuer.token(scope="mail:read", sub="usr_b")
    calls = [
        ("POST", "/messages", bearer(token), {"to": "usr_b", "body": "hi"}),
        ("GET", "/sync", bearer(issuer.token(scope="mail:send")), None),
        ("POST", "/messages", bearer(token), {"to": 5}),
        ("GET", "/with-request", bearer(reader), None),
        ("GET", "/sync", bearer(reader), None),
        ("GET", "/sync", {}, None),
        ("GET", "/clash?gatepass_request=7", bearer(reader), None),
        ("GET", "/nested", bearer(reader), None),
    ]
    answers = {}
    for route_class in (APIRoute, GatepassRoute):
        async with serve(route_class) as (_, http, _auth):
            answers[route_class] = [
                (r.status_code, r.json(), r.headers.get("www-authenticate"))
                for r in [await http.request(m, u, headers=h, json=j) for m, u, h, j in calls]
            ]
    assert answers[GatepassRoute] == answers[APIRoute]
    statuses = [status for status, _, _ in answers[GatepassRoute]]
    assert statuses == [200, 403, 422, 200, 200, 401, 200, 200]
    # (A route needing several scopes differs in one detail: the door lists all of them in a 403,
    # FastAPI's resolution those of the first dependency that failed; see the test below.)
    assert answers[GatepassRoute][6][1] == {"sub": "usr_b", "value": 7}
    assert answers[GatepassRoute][7][1] == {"sub": "usr_b", "owner": "usr_b"}


async def test_a_missing_scope_lists_every_scope_the_route_needs(
    serve: Serve, issuer: FakeIssuer
) -> None:
    async with serve(GatepassRoute) as (_, http, _auth):
        response = await http.post(
            "/messages", json={"to": "x", "body": "y"}, headers=bearer(issuer.token())
        )
    assert response.status_code == 403
    assert response.json()["required_scopes"] == ["mail:read", "mail:send"]
    assert 'scope="mail:read mail:send"' in response.headers["www-authenticate"]


async def test_the_openapi_document_is_the_same(serve: Serve) -> None:
    documents = []
    for route_class in (APIRoute, GatepassRoute):
        async with serve(route_class) as (app, _http, _auth):
            documents.append(app.openapi())
    assert documents[0] == documents[1]


async def test_fastapi_sees_the_endpoint_without_its_gatepass_parameters(serve: Serve) -> None:
    dependants = {}
    for route_class in (APIRoute, GatepassRoute):
        async with serve(route_class) as (app, _http, _auth):
            route = next(r for r in app.routes if isinstance(r, APIRoute) and r.path == "/messages")
            assert route.name == route.endpoint.__name__ == "send"
            dependants[route_class] = route.dependant
    plain, door = dependants[APIRoute], dependants[GatepassRoute]
    # The route's dependencies= stay FastAPI's to resolve; the endpoint's parameter is given.
    assert [gatepass_scopes(d.call) for d in plain.dependencies] == [
        frozenset({"mail:send"}),
        frozenset({"mail:read"}),
    ]
    assert [gatepass_scopes(d.call) for d in door.dependencies] == [frozenset({"mail:send"})]
    assert [f.name for f in door.body_params] == [f.name for f in plain.body_params] == ["draft"]


def count_resolutions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every time FastAPI resolves a gatepass dependency, its path (they all call this)."""
    resolved: list[str] = []
    original = gatepass.fastapi.current_principal

    async def counting(request: Request) -> AccessPrincipal:
        resolved.append(request.url.path)
        return await original(request)

    monkeypatch.setattr(gatepass.fastapi, "current_principal", counting)
    return resolved


async def test_fastapi_resolves_no_gatepass_parameter_of_the_endpoint(
    serve: Serve, issuer: FakeIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolved = count_resolutions(monkeypatch)
    included = APIRouter(route_class=GatepassRoute)

    @included.get("/included")
    async def in_a_router(user: Reader) -> str:
        return user.sub

    token = bearer(issuer.token(sub="usr_i", scope="mail:read mail:send"))
    async with serve(GatepassRoute) as (app, http, _auth):
        app.include_router(included, prefix="/router")
        answers = [
            (await http.get("/router/included", headers=token)).json(),
            (await http.get("/sync", headers=token)).json(),
            (await http.post("/messages", json={"to": "x", "body": "y"}, headers=token)).json(),
        ]
    assert answers == ["usr_i", {"sub": "usr_i"}, {"from": "usr_i", "to": "x"}]
    # Only the route's dependencies= (SEND on /messages) went through FastAPI's resolution.
    assert resolved == ["/messages"]


async def test_a_sync_endpoint_still_runs_in_a_worker_thread(
    serve: Serve, issuer: FakeIssuer
) -> None:
    threads: list[int] = []

    def blocking(user: Reader) -> str:
        threads.append(threading.get_ident())
        return user.sub

    async with serve(GatepassRoute) as (app, http, _auth):
        app.router.add_api_route("/blocking", blocking, methods=["GET"])
        response = await http.get("/blocking", headers=bearer(issuer.token(sub="usr_s")))
    assert response.json() == "usr_s"
    assert threads
    assert threads[0] != threading.get_ident()


async def test_one_verification_a_request_even_when_nested(
    serve: Serve, issuer: FakeIssuer
) -> None:
    async with serve(GatepassRoute) as (_, http, auth):
        for _ in range(3):
            response = await http.get("/nested", headers=bearer(issuer.token(sub="usr_n")))
            assert response.json() == {"sub": "usr_n", "owner": "usr_n"}
    # The nested Principal reused the door's principal instead of verifying again.
    assert auth.readiness().verified == 3


async def test_an_override_without_parameters_is_honoured(serve: Serve) -> None:
    fake = AccessPrincipal("usr_test", frozenset(), ("mail",), 2e9, 0, None, None, None, {})
    async with serve(GatepassRoute) as (app, http, _auth):
        app.dependency_overrides[current_principal] = lambda: fake
        assert (await http.get("/with-request")).json()["sub"] == "usr_test"
        assert (await http.get("/sync")).status_code == 401  # not overridden: still checked
        app.dependency_overrides.clear()
        assert (await http.get("/with-request")).status_code == 401


async def test_an_override_with_parameters_is_honoured(serve: Serve) -> None:
    async def from_a_header(request: Request) -> AccessPrincipal:
        sub = request.headers["x-test-user"]
        return AccessPrincipal(sub, frozenset(), ("mail",), 2e9, 0, None, None, None, {})

    async with serve(GatepassRoute) as (app, http, _auth):
        app.dependency_overrides[current_principal] = from_a_header
        response = await http.get("/with-request", headers={"x-test-user": "usr_h"})
    assert response.json()["sub"] == "usr_h"


async def test_require_scopes_can_be_overridden_anew(serve: Serve) -> None:
    fake = AccessPrincipal("usr_test", frozenset(), ("mail",), 2e9, 0, None, None, None, {})
    async with serve(GatepassRoute) as (app, http, _auth):
        # Not the object the route was built with: the same scopes give the same dependency.
        app.dependency_overrides[require_scopes("mail:read")] = lambda: fake
        assert (await http.get("/sync")).json() == {"sub": "usr_test"}
        assert (await http.get("/with-request")).status_code == 401  # Principal: still checked


async def test_a_callable_object_is_checked_at_the_door_too(
    serve: Serve, issuer: FakeIssuer
) -> None:
    class Endpoint:
        async def __call__(self, draft: Draft, user: Principal) -> str:
            return user.sub

    async with serve(GatepassRoute) as (app, http, auth):
        app.router.add_api_route("/callable", Endpoint(), methods=["POST"])
        refused = await http.post("/callable", content=b"{not json")
        token = issuer.token(sub="usr_c")
        accepted = await http.post(
            "/callable", json={"to": "x", "body": "y"}, headers=bearer(token)
        )
    assert refused.status_code == 401  # before the body: a plain route would answer 400
    assert accepted.json() == "usr_c"
    assert auth.readiness().verified == 1

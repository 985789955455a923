"""FastAPI integration through ASGITransport: the RFC 6750 answers, as problem+json.

Every test runs twice: with FastAPI's own routes, where FastAPI resolves gatepass's dependencies,
and with ``GatepassRoute``, which checks them at the door. The answers must be the same.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from prometheus_client import CollectorRegistry, generate_latest

from gatepass import (
    AccessPrincipal,
    EdgeAuth,
    EdgeAuthSettings,
    GatepassRoute,
    Principal,
    edge_auth,
    install_problem_handlers,
    require_scopes,
)
from gatepass.testing import FakeIssuer, ManualClock

PROBLEM = "application/problem+json"


@pytest.fixture(params=[APIRoute, GatepassRoute], ids=["depends", "door"])
def route_class(request: pytest.FixtureRequest) -> type[APIRoute]:
    route: type[APIRoute] = request.param
    return route


def build_app(
    auth: EdgeAuth, *, problem_handlers: bool = True, route_class: type[APIRoute] = APIRoute
) -> FastAPI:
    app = FastAPI(lifespan=auth.lifespan)
    app.router.route_class = route_class
    if problem_handlers:
        install_problem_handlers(app)
    auth.install(app)

    @app.get("/about")
    async def about() -> dict[str, str]:
        return {"service": "mail"}

    @app.get("/me")
    async def me(user: Principal) -> dict[str, Any]:
        return {"sub": user.sub, "scopes": sorted(user.scopes)}

    @app.get("/inbox")
    async def inbox(
        user: Annotated[AccessPrincipal, Depends(require_scopes("mail:read"))],
    ) -> dict[str, str]:
        return {"owner": user.sub}

    @app.post("/send", dependencies=[Depends(require_scopes("mail:read", "mail:send"))])
    async def send() -> dict[str, bool]:
        return {"sent": True}

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        state = edge_auth(request).readiness()
        return JSONResponse(state.as_dict(), status_code=200 if state.ready else 503)

    return app


@dataclass
class Edge:
    auth: EdgeAuth
    http: httpx.AsyncClient
    issuer: FakeIssuer
    clock: ManualClock


async def running_edge(
    issuer: FakeIssuer,
    clock: ManualClock,
    client: httpx.AsyncClient,
    route_class: type[APIRoute],
    **settings: Any,
) -> AsyncIterator[Edge]:
    config = EdgeAuthSettings(issuer=issuer.issuer, audience="mail", **settings)
    registry = CollectorRegistry()
    auth = EdgeAuth.from_settings(config, client=client, clock=clock, registry=registry)
    auth.registry = registry  # type: ignore[attr-defined]
    app = build_app(auth, route_class=route_class)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mail.test") as http:
            yield Edge(auth, http, issuer, clock)


@pytest.fixture
async def edge(
    issuer: FakeIssuer, clock: ManualClock, client: httpx.AsyncClient, route_class: type[APIRoute]
) -> AsyncIterator[Edge]:
    async for running in running_edge(issuer, clock, client, route_class):
        yield running


@pytest.fixture
async def cookie_edge(
    issuer: FakeIssuer, clock: ManualClock, client: httpx.AsyncClient, route_class: type[APIRoute]
) -> AsyncIterator[Edge]:
    async for running in running_edge(
        issuer, clock, client, route_class, cookie_name="gatepass_at"
    ):
        yield running


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].endswith("/" + code)
    return body


# -- the happy paths ------------------------------------------------------------------------


async def test_an_open_route_needs_nothing(edge: Edge) -> None:
    assert (await edge.http.get("/about")).status_code == 200


async def test_a_valid_token_reaches_the_route(edge: Edge) -> None:
    response = await edge.http.get("/me", headers=bearer(edge.issuer.token()))
    assert response.status_code == 200
    assert response.json() == {"sub": "user-1", "scopes": ["mail:read"]}


async def test_scopes_allow_the_route(edge: Edge) -> None:
    token = edge.issuer.token(scope="mail:read mail:send")
    assert (await edge.http.get("/inbox", headers=bearer(token))).json() == {"owner": "user-1"}
    assert (await edge.http.post("/send", headers=bearer(token))).json() == {"sent": True}


async def test_the_scheme_is_case_insensitive(edge: Edge) -> None:
    headers = {"authorization": f"bEaReR {edge.issuer.token()}"}
    assert (await edge.http.get("/me", headers=headers)).status_code == 200


# -- 401 ------------------------------------------------------------------------------------


async def test_no_token_is_a_bare_challenge(edge: Edge) -> None:
    response = await edge.http.get("/me")
    assert_problem(response, 401, "missing_token")
    assert response.headers["www-authenticate"] == 'Bearer realm="mail"'


async def test_another_scheme_counts_as_no_token(edge: Edge) -> None:
    response = await edge.http.get("/me", headers={"authorization": "Basic dXNlcjpwYXNz"})
    assert response.headers["www-authenticate"] == 'Bearer realm="mail"'


async def test_a_bad_token_says_invalid_token(edge: Edge) -> None:
    token = edge.issuer.token(ttl=-120)
    response = await edge.http.get("/me", headers=bearer(token))
    body = assert_problem(response, 401, "invalid_token")
    assert body["reason"] == "expired"
    assert body["instance"] == "/me"
    assert response.headers["www-authenticate"] == (
        'Bearer realm="mail", error="invalid_token", error_description="The access token expired."'
    )


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"aud": ["video"]}, "wrong_audience"),
        ({"iss": "https://evil.test"}, "wrong_issuer"),
        ({"headers": {"kid": "someone-else"}}, "unknown_kid"),
        ({"headers": {"typ": "JWT"}}, "wrong_typ"),
    ],
)
async def test_each_bad_token_names_its_reason(
    edge: Edge, overrides: dict[str, Any], reason: str
) -> None:
    response = await edge.http.get("/me", headers=bearer(edge.issuer.token(**overrides)))
    assert assert_problem(response, 401, "invalid_token")["reason"] == reason


# -- 403, 400 -------------------------------------------------------------------------------


async def test_a_missing_scope_is_403_insufficient_scope(edge: Edge) -> None:
    response = await edge.http.post("/send", headers=bearer(edge.issuer.token()))
    body = assert_problem(response, 403, "insufficient_scope")
    assert body["required_scopes"] == ["mail:read", "mail:send"]
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="mail", error="insufficient_scope"')
    assert challenge.endswith('scope="mail:read mail:send"')


async def test_two_authorization_headers_are_an_invalid_request(edge: Edge) -> None:
    token = edge.issuer.token()
    headers = [("authorization", f"Bearer {token}"), ("authorization", f"Bearer {token}")]
    response = await edge.http.get("/me", headers=headers)
    assert assert_problem(response, 400, "invalid_request")["reason"] == "invalid_request"
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


@pytest.mark.parametrize("value", ["Bearer", "Bearer ", "Bearer a b", "Bearer <script>"])
async def test_a_malformed_bearer_header_is_an_invalid_request(edge: Edge, value: str) -> None:
    response = await edge.http.get("/me", headers={"authorization": value})
    assert_problem(response, 400, "invalid_request")


async def test_a_cookie_is_ignored_unless_enabled(edge: Edge) -> None:
    response = await edge.http.get("/me", headers={"cookie": f"gatepass_at={edge.issuer.token()}"})
    assert_problem(response, 401, "missing_token")


# -- 503 ------------------------------------------------------------------------------------


async def test_no_usable_keys_is_503_never_401(edge: Edge) -> None:
    edge.issuer.fail_with = httpx.ConnectError("down")
    token = edge.issuer.token()
    edge.clock.advance(12 * 3600 + 1)
    response = await edge.http.get("/me", headers=bearer(edge.issuer.token()))
    body = assert_problem(response, 503, "temporarily_unavailable")
    assert body["reason"] == "no_usable_keys"
    assert int(response.headers["retry-after"]) >= 1
    assert "www-authenticate" not in response.headers
    assert (await edge.http.get("/readyz")).status_code == 503
    assert token


async def test_readiness_reports_the_key_set(edge: Edge) -> None:
    response = await edge.http.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["ready"] is True
    assert body["kids"] == [edge.issuer.default_kid]


# -- cookies --------------------------------------------------------------------------------


async def test_a_token_in_the_cookie(cookie_edge: Edge) -> None:
    cookie = {"cookie": f"gatepass_at={cookie_edge.issuer.token()}"}
    assert (await cookie_edge.http.get("/me", headers=cookie)).status_code == 200


async def test_header_and_cookie_together_are_an_invalid_request(cookie_edge: Edge) -> None:
    token = cookie_edge.issuer.token()
    headers = {**bearer(token), "cookie": f"gatepass_at={token}"}
    response = await cookie_edge.http.get("/me", headers=headers)
    assert_problem(response, 400, "invalid_request")


async def test_the_cookie_twice_is_an_invalid_request(cookie_edge: Edge) -> None:
    token = cookie_edge.issuer.token()
    headers = {"cookie": f"gatepass_at={token}; other=1; gatepass_at={token}"}
    assert_problem(await cookie_edge.http.get("/me", headers=headers), 400, "invalid_request")


async def test_an_emptied_cookie_is_no_token(cookie_edge: Edge) -> None:
    response = await cookie_edge.http.get("/me", headers={"cookie": "gatepass_at="})
    assert_problem(response, 401, "missing_token")


async def test_an_unsafe_cookie_request_needs_the_csrf_pair(cookie_edge: Edge) -> None:
    token = cookie_edge.issuer.token(scope="mail:read mail:send")
    cookies = {"gatepass_at": token, "gatepass_csrf": "nonce-123"}
    cookie_edge.http.cookies.update(cookies)
    refused = await cookie_edge.http.post("/send")
    assert assert_problem(refused, 403, "access_denied")["reason"] == "csrf"
    wrong = await cookie_edge.http.post("/send", headers={"x-csrf-token": "nonce-999"})
    assert_problem(wrong, 403, "access_denied")
    allowed = await cookie_edge.http.post("/send", headers={"x-csrf-token": "nonce-123"})
    assert allowed.status_code == 200
    assert (await cookie_edge.http.get("/inbox")).status_code == 200  # safe: no pair needed


async def test_a_header_token_needs_no_csrf_pair(cookie_edge: Edge) -> None:
    token = cookie_edge.issuer.token(scope="mail:read mail:send")
    assert (await cookie_edge.http.post("/send", headers=bearer(token))).status_code == 200


# -- wiring ---------------------------------------------------------------------------------


async def test_install_alone_renders_problems(
    issuer: FakeIssuer, clock: ManualClock, client: httpx.AsyncClient, route_class: type[APIRoute]
) -> None:
    auth = EdgeAuth.from_settings(
        EdgeAuthSettings(issuer=issuer.issuer, audience="mail"), client=client, clock=clock
    )
    app = build_app(auth, problem_handlers=False, route_class=route_class)
    async with (
        auth.lifespan(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://mail.test"
        ) as http,
    ):
        assert_problem(await http.get("/me"), 401, "missing_token")


async def test_a_forgotten_install_is_a_clear_error(route_class: type[APIRoute]) -> None:
    app = FastAPI()
    app.router.route_class = route_class

    @app.get("/me")
    async def me(user: Principal) -> str:
        return user.sub

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://mail.test"
    ) as http:
        with pytest.raises(RuntimeError, match="install"):
            await http.get("/me")


async def test_rejections_are_counted_and_exported(edge: Edge) -> None:
    await edge.http.get("/me")
    await edge.http.get("/me", headers=bearer(edge.issuer.token(ttl=-120)))
    await edge.http.post("/send", headers=bearer(edge.issuer.token()))
    await edge.http.get("/me", headers=bearer(edge.issuer.token()))
    assert edge.auth.readiness().rejections == {
        "missing_token": 1,
        "expired": 1,
        "insufficient_scope": 1,
    }
    text = generate_latest(edge.auth.registry).decode()  # type: ignore[attr-defined]
    assert 'gatepass_edge_token_rejections_total{reason="expired"} 1.0' in text
    assert 'gatepass_edge_tokens_verified_total{path="signature"} 2.0' in text


async def test_a_hot_token_is_served_from_the_cache(edge: Edge) -> None:
    token = edge.issuer.token()
    for _ in range(3):
        assert (await edge.http.get("/me", headers=bearer(token))).status_code == 200
    assert edge.auth.readiness().cache_hits == 2

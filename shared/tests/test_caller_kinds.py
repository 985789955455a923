"""Users and services: ``AccessPrincipal.is_service`` and ``act``, ``require_user`` and
``require_service``, at the door (``GatepassRoute``) and as FastAPI dependencies alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import MappingProxyType
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel

from gatepass import (
    AccessPrincipal,
    EdgeAuth,
    EdgeAuthSettings,
    GatepassRoute,
    install_problem_handlers,
    presented_token,
    require_scopes,
    require_service,
    require_user,
)
from gatepass.edgetest import expect_problem
from gatepass.testing import FakeIssuer, ManualClock

User = Annotated[AccessPrincipal, Depends(require_user("mail:read"))]
Service = Annotated[AccessPrincipal, Depends(require_service("mail:notify"))]
Either = Annotated[AccessPrincipal, Depends(require_scopes("mail:read"))]


class Notification(BaseModel):
    to: str
    subject: str


def build_app(auth: EdgeAuth, route_class: type[APIRoute]) -> FastAPI:
    app = FastAPI(lifespan=auth.lifespan)
    app.router.route_class = route_class
    install_problem_handlers(app)
    auth.install(app)

    @app.get("/inbox")
    async def inbox(user: User) -> dict[str, Any]:
        return {"sub": user.sub, "act": None if user.act is None else dict(user.act)}

    @app.post("/notifications", status_code=201)
    async def notify(note: Notification, caller: Service) -> dict[str, str]:
        return {"from": f"service:{caller.client_id}", "to": note.to}

    @app.get("/either")
    async def either(caller: Either) -> dict[str, bool]:
        return {"service": caller.is_service}

    @app.get("/users-only", dependencies=[Depends(require_user())])
    async def users_only() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/nobody")
    async def nobody(
        user: Annotated[AccessPrincipal, Depends(require_user())],
        service: Annotated[AccessPrincipal, Depends(require_service())],
    ) -> dict[str, bool]:
        return {"ok": True}

    @app.get("/token")
    async def token(request: Request, user: User) -> dict[str, str]:
        return {"token": presented_token(request)}

    return app


@pytest.fixture(params=[APIRoute, GatepassRoute], ids=["depends", "door"])
def route_class(request: pytest.FixtureRequest) -> type[APIRoute]:
    route: type[APIRoute] = request.param
    return route


@pytest.fixture
async def edge(
    issuer: FakeIssuer, clock: ManualClock, client: httpx.AsyncClient, route_class: type[APIRoute]
) -> AsyncIterator[tuple[httpx.AsyncClient, EdgeAuth]]:
    settings = EdgeAuthSettings(issuer=issuer.issuer, audience="mail")
    auth = EdgeAuth.from_settings(settings, client=client, clock=clock)
    app = build_app(auth, route_class)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mail.test") as h,
    ):
        yield h, auth


def user_token(issuer: FakeIssuer, scope: str = "mail:read", **claims: Any) -> str:
    return issuer.token(sub="usr_alice", sid="ses_1", client_id="web-app", scope=scope, **claims)


def service_token(issuer: FakeIssuer, scope: str = "mail:notify mail:read") -> str:
    return issuer.token(sub="video-svc", client_id="video-svc", sid=None, scope=scope)


def exchanged_token(issuer: FakeIssuer, scope: str = "mail:read mail:notify") -> str:
    return issuer.token(
        sub="usr_alice",
        sid="ses_1",
        client_id="video-svc",
        act={"sub": "video-svc", "act": {"sub": "gateway"}},
        scope=scope,
    )


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


# -- the rule ---------------------------------------------------------------------------------


def principal(**claims: Any) -> AccessPrincipal:
    return AccessPrincipal(
        sub=claims.get("sub", "svc"),
        scopes=frozenset(),
        aud=("mail",),
        exp=0.0,
        iat=0.0,
        sid=claims.get("sid"),
        jti=None,
        client_id=claims.get("client_id"),
        claims=MappingProxyType(claims),
    )


@pytest.mark.parametrize(
    ("claims", "is_service"),
    [
        ({"sub": "svc", "client_id": "svc"}, True),
        ({"sub": "svc", "client_id": "svc", "sid": "ses_1"}, False),  # a session: a user's
        ({"sub": "svc", "client_id": "svc", "act": {"sub": "other"}}, False),
        ({"sub": "usr_a", "client_id": "svc"}, False),
        ({"sub": "svc"}, False),  # no client_id to be
        ({"sub": "usr_a", "client_id": "web-app", "sid": "ses_1"}, False),
    ],
    ids=["service", "with-sid", "with-act", "other-sub", "no-client-id", "user"],
)
def test_a_service_token_has_no_sid_no_act_and_sub_is_its_client(
    claims: dict[str, Any], is_service: bool
) -> None:
    assert principal(**claims).is_service is is_service


def test_act_is_read_only_and_none_without() -> None:
    acting = principal(sub="usr_a", sid="s", act={"sub": "mail", "act": {"sub": "gw"}})
    assert acting.act == {"sub": "mail", "act": {"sub": "gw"}}
    with pytest.raises(TypeError):
        acting.act["sub"] = "someone else"  # type: ignore[index]
    assert principal(sub="usr_a").act is None


# -- who gets in ------------------------------------------------------------------------------


async def test_a_user_route_refuses_a_service_token(
    edge: tuple[httpx.AsyncClient, EdgeAuth], issuer: FakeIssuer
) -> None:
    http, auth = edge
    answer = await http.get("/inbox", headers=bearer(service_token(issuer)))
    body = expect_problem(answer, 403, "caller_not_allowed")
    assert body["reason"] == "caller_not_allowed"
    assert body["allowed_caller"] == "user"
    assert body["detail"] == "This resource is for users only."
    assert answer.headers["www-authenticate"] == (
        'Bearer realm="mail", error="insufficient_scope", '
        'error_description="This resource is for users only."'
    )
    assert auth.readiness().rejections["caller_not_allowed"] == 1


async def test_the_kind_is_checked_before_the_scopes(
    edge: tuple[httpx.AsyncClient, EdgeAuth], issuer: FakeIssuer
) -> None:
    http, _ = edge
    answer = await http.get("/inbox", headers=bearer(service_token(issuer, scope="mail:notify")))
    expect_problem(answer, 403, "caller_not_allowed")
    user_without_scope = bearer(user_token(issuer, scope="mail:send"))
    expect_problem(await http.get("/inbox", headers=user_without_scope), 403, "insufficient_scope")


async def test_a_user_route_takes_users_and_their_exchanged_tokens(
    edge: tuple[httpx.AsyncClient, EdgeAuth], issuer: FakeIssuer
) -> None:
    http, _ = edge
    plain = await http.get("/inbox", headers=bearer(user_token(issuer)))
    assert plain.json() == {"sub": "usr_alice", "act": None}
    exchanged = await http.get("/inbox", headers=bearer(exchanged_token(issuer)))
    assert exchanged.json() == {
        "sub": "usr_alice",
        "act": {"sub": "video-svc", "act": {"sub": "gateway"}},
    }


async def test_a_service_route_refuses_users_exchanged_or_not(
    edge: tuple[httpx.AsyncClient, EdgeAuth], issuer: FakeIssuer
) -> None:
    http, _ = edge
    note = {"to": "usr_bob", "subject": "hi"}
    for token in (user_token(issuer, scope="mail:notify"), exchanged_token(issuer)):
        answer = await http.post("/notifications", json=note, headers=bearer(token))
        body = expect_problem(answer, 403, "caller_not_allowed")
        assert body["detail"] == "This resource is for services only."
        assert 'error="insufficient_scope"' in answer.headers["www-authenticate"]
    answer = await http.post("/notifications", json=note, headers=bearer(service_token(issuer)))
    assert answer.status_code == 201
    assert answer.json() == {"from": "service:video-svc", "to": "usr_bob"}


async def test_require_scopes_takes_both_kinds(
    edge: tuple[httpx.AsyncClient, EdgeAuth], issuer: FakeIssuer
) -> None:
    http, _ = edge
    assert (await http.get("/either", headers=bearer(user_token(issuer)))).json() == {
        "service": False
    }
    assert (await http.get("/either", headers=bearer(service_token(issuer)))).json() == {
        "service": True
    }


async def test_route_dependencies_and_two_kinds_at_once(
    edge: tuple[httpx.AsyncClient, EdgeAuth], issuer: FakeIssuer
) -> None:
    http, _ = edge
    expect_problem(
        await http.get("/users-only", headers=bearer(service_token(issuer))),
        403,
        "caller_not_allowed",
    )
    assert (await http.get("/users-only", headers=bearer(user_token(issuer)))).status_code == 200
    for token in (user_token(issuer), service_token(issuer)):
        expect_problem(await http.get("/nobody", headers=bearer(token)), 403, "caller_not_allowed")


async def test_the_door_refuses_the_wrong_kind_before_the_body(
    issuer: FakeIssuer, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    settings = EdgeAuthSettings(issuer=issuer.issuer, audience="mail")
    answers = {}
    for route_class in (APIRoute, GatepassRoute):
        auth = EdgeAuth.from_settings(settings, client=client, clock=clock)
        app = build_app(auth, route_class)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://mail.test"
            ) as http,
        ):
            answer = await http.post(
                "/notifications",
                content=b"{not json",
                headers={
                    **bearer(user_token(issuer, scope="mail:notify")),
                    "content-type": "application/json",
                },
            )
            answers[route_class] = (answer.status_code, answer.json()["code"])
    assert answers == {  # FastAPI parses the body first
        GatepassRoute: (403, "caller_not_allowed"),
        APIRoute: (400, "malformed_request"),
    }


async def test_the_presented_token_is_the_one_sent(
    edge: tuple[httpx.AsyncClient, EdgeAuth], issuer: FakeIssuer
) -> None:
    http, _ = edge
    token = user_token(issuer)
    assert (await http.get("/token", headers=bearer(token))).json() == {"token": token}


@pytest.mark.parametrize("act", ["video-svc", {"client": "x"}, {"sub": ""}, ["video-svc"]])
async def test_a_malformed_act_is_an_invalid_token(
    edge: tuple[httpx.AsyncClient, EdgeAuth], issuer: FakeIssuer, act: object
) -> None:
    http, _ = edge
    token = issuer.token(sub="usr_alice", sid="ses_1", act=act)
    body = expect_problem(await http.get("/either", headers=bearer(token)), 401, "invalid_token")
    assert body["reason"] == "invalid_claim"

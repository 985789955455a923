"""The page's buttons: ``POST /app/api/call/{name}`` calls the configured service for the
signed-in user with the access cookie's token as Bearer, and answers what it said. The fake
edge is an ``httpx.MockTransport`` handed to the app as ``app.state.page_call_transport``."""

from __future__ import annotations

from pathlib import Path

import httpx
from fake_clock import FakeClock
from web_helpers import browser_app, page_csrf, script_post, set_cookies, sign_up

EMAIL = "noor@example.com"
CALLS = {"mail": "http://mail.test/inbox", "video": "http://video.test/videos"}


class FakeEdge:
    def __init__(self) -> None:
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if request.url.host == "video.test":
            return httpx.Response(
                403,
                json={"code": "insufficient_scope", "detail": "video:read needed"},
                headers={"Content-Type": "application/problem+json"},
            )
        return httpx.Response(200, json={"messages": [], "owner": "you"})


async def test_a_call_carries_the_users_token_and_answers_the_edges_json(
    tmp_path: Path, clock: FakeClock
) -> None:
    edge = FakeEdge()
    transport = httpx.MockTransport(edge)
    async with browser_app(tmp_path, clock, page_calls=CALLS, transport=transport) as (_, http):
        access = set_cookies(await sign_up(http, EMAIL))["gp_access"].value
        page = await http.get("/app")
        assert 'data-call="mail"' in page.text
        assert 'data-call="video"' in page.text
        answer = await script_post(http, "/app/api/call/mail")
        assert answer.status_code == 200
        assert answer.json() == {
            "service": "mail",
            "status": 200,
            "body": {"messages": [], "owner": "you"},
        }
        sent = edge.seen[-1]
        assert sent.method == "GET"
        assert str(sent.url) == CALLS["mail"]
        assert sent.headers["authorization"] == f"Bearer {access}"
        assert "cookie" not in sent.headers
        refused = await script_post(http, "/app/api/call/video")
        assert refused.json()["status"] == 403
        assert refused.json()["body"]["code"] == "insufficient_scope"


async def test_a_call_without_a_session_is_401_so_the_script_refreshes(
    tmp_path: Path, clock: FakeClock
) -> None:
    edge = FakeEdge()
    transport = httpx.MockTransport(edge)
    async with browser_app(tmp_path, clock, page_calls=CALLS, transport=transport) as (_, http):
        await sign_up(http, EMAIL)
        headers = {"X-CSRF-Token": page_csrf((await http.get("/app")).text)}
        http.cookies.delete("gp_access")
        answer = await http.post("/app/api/call/mail", headers=headers)
        assert answer.status_code == 401
        assert answer.json()["code"] == "not_signed_in"
        assert edge.seen == []
        assert (await http.post("/app/refresh", headers=headers)).status_code == 204
        assert (await http.post("/app/api/call/mail", headers=headers)).status_code == 200


async def test_an_unknown_service_is_404(tmp_path: Path, clock: FakeClock) -> None:
    async with browser_app(tmp_path, clock, page_calls=CALLS) as (_, http):
        await sign_up(http, EMAIL)
        answer = await script_post(http, "/app/api/call/files")
        assert answer.status_code == 404


async def test_an_edge_that_is_down_is_a_readable_503(tmp_path: Path, clock: FakeClock) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    transport = httpx.MockTransport(down)
    async with browser_app(tmp_path, clock, page_calls=CALLS, transport=transport) as (_, http):
        await sign_up(http, EMAIL)
        answer = await script_post(http, "/app/api/call/mail")
        assert answer.status_code == 503
        assert answer.json()["code"] == "peer_unavailable"
        assert "mail" in answer.json()["detail"]


async def test_an_answer_that_is_not_json_is_a_502(tmp_path: Path, clock: FakeClock) -> None:
    def html(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<h1>hi</h1>", headers={"Content-Type": "text/html"})

    transport = httpx.MockTransport(html)
    async with browser_app(tmp_path, clock, page_calls=CALLS, transport=transport) as (_, http):
        await sign_up(http, EMAIL)
        answer = await script_post(http, "/app/api/call/mail")
        assert answer.status_code == 502
        assert answer.json()["code"] == "bad_gateway"

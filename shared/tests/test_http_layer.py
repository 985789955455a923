"""``gatepass.httplayer``: the HTTP layer every gatepass app shares, on a bare app, in-process.

Security headers, ``HEAD`` wherever ``GET`` is, no trailing-slash redirects, API docs by
environment, the body-size limit for bodies with and without ``Content-Length``, the client's
address from trusted proxies only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from gatepass.edgetest import expect_problem
from gatepass.httplayer import app_options, install_http_layer
from gatepass.problems import install_problem_handlers
from gatepass.proxies import parse_address
from gatepass.settings import ServiceSettings

MAX_BODY = 2048


class Item(BaseModel):
    name: str


def build(**values: Any) -> FastAPI:
    settings = ServiceSettings(max_body_bytes=MAX_BODY, **values)
    app = FastAPI(**app_options(settings))
    install_problem_handlers(app)

    @app.get("/items")
    async def items() -> dict[str, list[str]]:
        return {"items": ["a", "b"]}

    @app.post("/items", status_code=201)
    async def add(item: Item) -> Item:
        return item

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.get("/public")
    async def public() -> JSONResponse:
        return JSONResponse({"keys": []}, headers={"Cache-Control": "public, max-age=600"})

    @app.get("/client")
    async def client(request: Request) -> dict[str, str | None]:
        return {"host": request.client.host if request.client else None}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("unexpected")

    install_http_layer(app, settings)
    return app


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as client:
        yield client


def client_of(app: FastAPI, peer: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(peer, 5555))
    return httpx.AsyncClient(transport=transport, base_url="http://app.test")


async def chunks(size: int) -> AsyncIterator[bytes]:
    """A body without Content-Length (httpx sends it chunked)."""
    for _ in range(size // 512):
        yield b"{" + b" " * 510 + b"}"


async def test_every_answer_has_nosniff_and_no_store_unless_it_says_otherwise(
    http: httpx.AsyncClient,
) -> None:
    answers = [
        await http.get("/items"),
        await http.post("/items", json={"name": "x"}),
        await http.post("/items", json={}),  # 422
        await http.get("/nowhere"),  # 404
        await http.delete("/items"),  # 405
        await http.post("/raw", content=b"x" * (MAX_BODY + 1)),  # 413 from the middleware
        await http.get("/boom"),  # 500, sent from outside every middleware
    ]
    assert [a.status_code for a in answers] == [200, 201, 422, 404, 405, 413, 500]
    for answer in answers:
        assert answer.headers["x-content-type-options"] == "nosniff", answer.request.url
        assert answer.headers["cache-control"] == "no-store", answer.request.url
    public = await http.get("/public")
    assert public.headers["cache-control"] == "public, max-age=600"
    assert public.headers["x-content-type-options"] == "nosniff"


async def test_head_is_get_without_the_body(http: httpx.AsyncClient) -> None:
    get, head = await http.get("/public"), await http.head("/public")
    assert (head.status_code, head.content) == (200, b"")
    for name in ("content-length", "content-type", "cache-control"):
        assert head.headers[name] == get.headers[name]
    assert (await http.head("/nowhere")).status_code == 404
    assert (await http.head("/raw")).status_code == 405  # no GET there, so no HEAD either


async def test_no_trailing_slash_redirect_whatever_the_host(http: httpx.AsyncClient) -> None:
    answer = await http.get("/items/", headers={"host": "evil.example"})
    expect_problem(answer, 404, "not_found")
    assert "location" not in answer.headers


@pytest.mark.parametrize(
    ("values", "docs"),
    [
        ({}, False),  # production by default
        ({"environment": "development"}, True),
        ({"environment": "development", "api_docs": False}, False),
        ({"api_docs": True}, True),
    ],
)
async def test_api_docs_follow_the_environment_unless_set(
    values: dict[str, Any], *, docs: bool
) -> None:
    async with client_of(build(**values), "127.0.0.1") as http:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert (await http.get(path)).status_code == (200 if docs else 404), path


@pytest.mark.parametrize("path", ["/items", "/raw"])
async def test_a_chunked_body_over_the_limit_is_413(http: httpx.AsyncClient, path: str) -> None:
    """FastAPI turned the limit's error into a 400 while parsing JSON; now it is 413 everywhere."""
    answer = await http.post(
        path, content=chunks(4 * MAX_BODY), headers={"content-type": "application/json"}
    )
    assert "content-length" not in answer.request.headers
    expect_problem(answer, 413, "payload_too_large")
    small = await http.post(
        "/items", content=b'{"name": "x"}', headers={"content-type": "application/json"}
    )
    assert small.status_code == 201


async def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() -> None:
    spoof = {"x-forwarded-for": "203.0.113.9"}
    async with client_of(build(), "192.0.2.1") as http:
        assert (await http.get("/client", headers=spoof)).json() == {"host": "192.0.2.1"}
    trusting = build(trusted_proxies="10.0.0.0/8, 192.0.2.1")
    async with client_of(trusting, "192.0.2.50") as http:  # not a proxy of ours
        assert (await http.get("/client", headers=spoof)).json() == {"host": "192.0.2.50"}
    async with client_of(trusting, "192.0.2.1") as http:
        for forwarded, client in [
            ("203.0.113.9", "203.0.113.9"),
            ("198.51.100.1, 203.0.113.9, 10.0.0.7", "203.0.113.9"),
            ("203.0.113.9:4711", "203.0.113.9"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("::ffff:203.0.113.9", "203.0.113.9"),
            ("10.0.0.1, 10.0.0.2", "10.0.0.1"),  # all trusted: the first one
            ("203.0.113.9, attacker\r-junk", "192.0.2.1"),
            ("unknown", "192.0.2.1"),
            ("", "192.0.2.1"),
        ]:
            answer = await http.get("/client", headers={"x-forwarded-for": forwarded})
            assert answer.json() == {"host": client}, forwarded
        two_headers = [("x-forwarded-for", "198.51.100.1"), ("x-forwarded-for", "10.0.0.9")]
        assert (await http.get("/client", headers=two_headers)).json() == {"host": "198.51.100.1"}


def test_addresses_parse_strictly() -> None:
    assert str(parse_address("192.0.2.1")) == "192.0.2.1"
    assert str(parse_address("[::1]:80")) == "::1"
    for bad in (
        "",
        "example.com",
        "192.0.2.1:",
        "192.0.2.1:123456",
        "[::1",
        "1.2.3.4.5",
        "x" * 100,
    ):
        assert parse_address(bad) is None, bad


@pytest.mark.parametrize("value", ["*", "10.0.0.1/8", "example.com", "10.0.0.0/33"])
def test_trusted_proxies_must_be_addresses_or_networks(value: str) -> None:
    with pytest.raises(ValidationError, match="entry 1 is not an IP address"):
        ServiceSettings(trusted_proxies=value)
    assert ServiceSettings(trusted_proxies=" ").trusted_proxies == ()

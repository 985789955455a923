"""``gatepass.edgetest.Peers``: edges side by side in-process, reaching each other by URL through
one transport (``Hosts``) where a test takes a service down or holds its answers.

The edges here are the smallest that call a peer: ``GET /ask`` asks the peer's ``GET /hello``
with the client the edge was built with, and says 502 when it cannot reach it; ``GET /settings``
shows what the edge was given.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic_settings import SettingsConfigDict

from gatepass.core.oauth import CLIENT_CREDENTIALS, TOKEN_EXCHANGE
from gatepass.edgetest import Hosts, Peer, Peers
from gatepass.settings import EdgeAuthSettings, PeerUrl

A_URL, B_URL = "http://a.test", "http://b.test"
WAIT = 5.0  # seconds for what happens at once in-process: a hang fails instead of blocking


class AskSettings(EdgeAuthSettings):
    model_config = SettingsConfigDict(env_prefix="GATEPASS_ASK_", extra="ignore")
    data_dir: Path
    peer_url: PeerUrl


def create_app(settings: AskSettings, client: httpx.AsyncClient) -> FastAPI:
    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"from": settings.audience}

    @app.get("/settings")
    async def identity() -> dict[str, str | None]:
        return {"client_id": settings.client_id, "data_dir": str(settings.data_dir)}

    @app.get("/ask")
    async def ask() -> JSONResponse:
        try:
            answer = await client.get(f"{settings.peer_url}/hello")
        except httpx.ConnectError:
            return JSONResponse({"error": "unreachable"}, status_code=502)
        return JSONResponse(answer.json())

    return app


class Two(Peers):
    a = Peer("a", create_app, AskSettings, A_URL, {"audience": "aud-a", "peer_url": B_URL + "/"})
    b = Peer("b", create_app, AskSettings, B_URL, {"audience": "aud-b", "peer_url": A_URL})


@pytest.fixture
async def peers(tmp_path: Path) -> AsyncIterator[Two]:
    async with Two.run(tmp_path) as peers:
        yield peers


async def test_each_edge_reaches_the_other_by_its_url(peers: Two, tmp_path: Path) -> None:
    a, b = peers.a, peers.b
    assert Two.peers() == [Two.a, Two.b]
    assert list(peers.edges) == ["a", "b"]  # started in the order declared
    assert (a.audience, b.audience) == ("aud-a", "aud-b")
    assert peers.edges["a"] is a
    settings = (await a.http.get("/settings")).json()
    assert settings == {"client_id": "a", "data_dir": str(tmp_path / "a")}
    assert (await a.http.get("/ask")).json() == {"from": "aud-b"}
    assert (await b.http.get("/ask")).json() == {"from": "aud-a"}
    assert str(a.http.base_url).rstrip("/") == A_URL


async def test_the_issuer_token_endpoint_is_routed_and_kept(peers: Two) -> None:
    form = {"grant_type": CLIENT_CREDENTIALS, "client_id": "a", "audience": "b"}
    async with httpx.AsyncClient(transport=peers.hosts) as client:
        answer = await client.post(peers.issuer.token_url, data=form)
    assert answer.status_code == 200, answer.text
    assert [g["client_id"] for g in peers.token_grants(CLIENT_CREDENTIALS)] == ["a"]
    assert peers.token_grants(TOKEN_EXCHANGE) == []


async def test_a_service_taken_down_refuses_until_it_is_up(peers: Two) -> None:
    a = peers.a
    peers.down(B_URL)
    answer = await a.http.get("/ask")
    assert (answer.status_code, answer.json()) == (502, {"error": "unreachable"})
    peers.up(B_URL)
    assert (await a.http.get("/ask")).json() == {"from": "aud-b"}


async def test_a_held_service_answers_once_released(peers: Two) -> None:
    a = peers.a
    hold = peers.hold(B_URL)
    asking = asyncio.create_task(a.http.get("/ask"))
    await asyncio.wait_for(hold.arrived.wait(), WAIT)
    assert not asking.done()
    hold.released.set()
    answer = await asyncio.wait_for(asking, WAIT)
    assert answer.json() == {"from": "aud-b"}


async def test_a_host_without_a_route_refuses() -> None:
    hosts = Hosts({})
    async with httpx.AsyncClient(transport=hosts) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("http://nowhere.test/")

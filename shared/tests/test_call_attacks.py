"""Attacks on the library's client side (gatepass.core.oauth, gatepass.calls), each refused:
found by a review that attacked it without having written it; every test failed before its fix,
or documents a defence worth keeping.

The fake issuer's token endpoint and a fake peer, ``video``, answer through one mock transport.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from gatepass.calls import ServiceCalls
from gatepass.core.oauth import ClientIdentity, TokenEndpoint
from gatepass.testing import FakeIssuer

VIDEO = "http://video.test"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


@dataclass
class Video:
    """The peer: the bearer tokens it was called with."""

    tokens: list[str] = field(default_factory=list)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.tokens.append(request.headers.get("authorization", "").removeprefix("Bearer "))
        return httpx.Response(200, json={"id": "vid_1", "title": "holiday"})


@dataclass
class World:
    issuer: FakeIssuer
    video: Video
    calls: ServiceCalls

    def exchanges(self) -> int:
        return sum(1 for g in self.issuer.token_grants if g["grant_type"] == TOKEN_EXCHANGE)

    def user_token(self, sub: str = "usr_alice", ttl: float = 300) -> str:
        return self.issuer.token(
            sub=sub, sid=f"ses_{sub}", aud=["mail"], scope="mail:read video:read", ttl=ttl
        )


@pytest.fixture
async def world() -> AsyncIterator[World]:
    issuer = FakeIssuer(clock=time.time, token_endpoint=True)
    video = Video()
    to_issuer = issuer.transport()
    issuer_host = httpx.URL(issuer.issuer).host

    async def route(request: httpx.Request) -> httpx.Response:
        if request.url.host == issuer_host:
            return await to_issuer.handle_async_request(request)
        return await video(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(route)) as client:
        identity = ClientIdentity.from_secret("mail", "mail-secret-0123456789")
        endpoint = TokenEndpoint(client, issuer=issuer.issuer, identity=identity)
        calls = ServiceCalls(client, endpoint=endpoint)
        try:
            yield World(issuer, video, calls)
        finally:
            await calls.aclose()


async def test_a_call_for_a_user_whose_token_nears_expiry_exchanges_once(world: World) -> None:
    """Was a finding (low, amplification): an exchanged token within the Exchanger's 30 s margin of
    its expiry is never cached, and ``ServiceCalls._call`` asks for the token twice (once to
    fail early, once in the auth flow): every call for a user whose token has under 30 s left
    makes two token exchanges (each a database transaction at the auth service), a retried
    GET up to four. The exchanged token never outlives the user's, so this is every user's
    last half-minute of every token."""
    subject = world.user_token(ttl=20)
    answer = await world.calls.get(
        f"{VIDEO}/videos/vid_1", auth=world.calls.for_user(subject, "video", "video:read")
    )
    assert answer.status_code == 200
    assert world.exchanges() == 1


async def test_defended_the_exchange_cache_never_hands_one_users_token_to_another(
    world: World,
) -> None:
    """Defended: the cache is keyed by a digest of the user's token, the audience and the
    scopes: two users (or one user's two tokens) never share an exchanged token."""
    alice, bob = world.user_token("usr_alice"), world.user_token("usr_bob")
    for subject in (alice, bob, alice, bob):
        auth = world.calls.for_user(subject, "video", "video:read")
        assert (await world.calls.get(f"{VIDEO}/videos/vid_1", auth=auth)).status_code == 200
    subs = [world.issuer.decode(token)["sub"] for token in world.video.tokens]
    assert subs == ["usr_alice", "usr_bob", "usr_alice", "usr_bob"]
    assert world.exchanges() == 2
    assert alice not in world.video.tokens
    assert bob not in world.video.tokens

"""Calls to other services from an edge built with ``edge_app``: ``Calls``, ``as_service``,
``for_user``, retries and ``PeerUnavailableError``; the revocation feed read with the edge's own
service token; the identity settings.

The fake issuer (token endpoint on) and a fake peer, ``video``, answer through one mock
transport, the one the edge is given.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from gatepass import (
    AccessPrincipal,
    Calls,
    EdgeAuth,
    GatepassRoute,
    PeerUnavailableError,
    require_user,
)
from gatepass.calls import ExchangeRefusedError, ServiceCalls, open_service_calls
from gatepass.core.feed import FeedConfig, RevocationFeed
from gatepass.core.keyset import RemoteKeySet
from gatepass.core.oauth import (
    REFUSAL_MIN_AGE,
    ClientIdentity,
    ServiceTokens,
    TokenAuth,
    TokenEndpoint,
)
from gatepass.core.revocations import DenySet
from gatepass.edge import edge_app
from gatepass.edgetest import expect_problem
from gatepass.service import About, EdgeServiceSettings, ServiceDatabase
from gatepass.settings import ConfigError, describe_settings_error
from gatepass.testing import FakeIssuer, ManualClock, generate_key, private_jwk

VIDEO = "http://video.test"
CLIENT_ID = "mail-svc"
SECRET = "s3cret-0123456789abcdef"
ENV_PY = """
from sqlalchemy import MetaData

from gatepass.alembic_env import run_migrations

run_migrations(MetaData())
"""

User = Annotated[AccessPrincipal, Depends(require_user("mail:read"))]
router = APIRouter()
checked = APIRouter(route_class=GatepassRoute)  # the token checked at the door


@checked.get("/checked/videos/{video_id}")
async def checked_video_for_user(video_id: str, user: User, request: Request, calls: Calls) -> Any:
    auth = calls.for_user(request, "video", "video:read")
    answer = await calls.get(f"{VIDEO}/videos/{video_id}", auth=auth)
    return {"status": answer.status_code}


@router.get("/videos/{video_id}")
async def video_for_user(video_id: str, user: User, request: Request, calls: Calls) -> Any:
    auth = calls.for_user(request, "video", "video:read")
    answer = await calls.get(f"{VIDEO}/videos/{video_id}", auth=auth)
    return {"status": answer.status_code, "seen": answer.json()}


@router.post("/ping")
async def ping(user: User, calls: Calls) -> Any:
    auth = calls.as_service("video", "video:notify")
    answer = await calls.post(f"{VIDEO}/notify", auth=auth, json={"to": user.sub})
    return {"status": answer.status_code, "seen": answer.json()}


@router.get("/public")
async def public(calls: Calls) -> Any:
    return (await calls.get(f"{VIDEO}/public")).json()


class MailSettings(EdgeServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEPASS_TESTMAIL_", extra="ignore")
    audience: str = "mail"


@dataclass
class Peer:
    """The video service: what it was asked, with which token's claims; what it answers."""

    issuer: FakeIssuer
    status: int = 200
    fail_with: Exception | None = None
    delay: float = 0.0
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        authorization = request.headers.get("authorization")
        claims = None
        if authorization is not None:
            claims = self.issuer.decode(authorization.removeprefix("Bearer "))
        self.seen.append({"path": request.url.path, "method": request.method, "claims": claims})
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_with is not None:
            raise self.fail_with
        return httpx.Response(self.status, json={"claims": claims})

    def count(self, path: str) -> int:
        return sum(1 for request in self.seen if request["path"] == path)


@dataclass
class Edge:
    app: FastAPI
    http: httpx.AsyncClient
    issuer: FakeIssuer
    peer: Peer

    def bearer(self, scope: str = "mail:read video:read", **claims: Any) -> dict[str, str]:
        values = {"sub": "usr_alice", "sid": "ses_1", "aud": ["mail"], "scope": scope, **claims}
        return {"authorization": f"Bearer {self.issuer.token(**values)}"}


def write_migrations(folder: Path) -> Path:
    (folder / "versions").mkdir(parents=True)
    (folder / "env.py").write_text(ENV_PY)
    return folder


@pytest.fixture
def fake_issuer() -> FakeIssuer:
    return FakeIssuer(clock=time.time, token_endpoint=True)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "mail-svc.json"
    path.write_text(json.dumps(private_jwk(generate_key("ES256"), "mail-1", "ES256")))
    return path


@pytest.fixture
def settings(fake_issuer: FakeIssuer, tmp_path: Path, key_file: Path) -> MailSettings:
    return MailSettings(
        issuer=fake_issuer.issuer,
        data_dir=tmp_path / "data",
        client_id=CLIENT_ID,
        client_key_file=key_file,
    )


def variant(settings: MailSettings, **changes: Any) -> MailSettings:
    """``settings`` with ``changes``, validated again (``model_copy`` would not)."""
    return MailSettings(**{**settings.model_dump(), **changes})


@asynccontextmanager
async def running(
    settings: MailSettings, issuer: FakeIssuer, tmp_path: Path
) -> AsyncIterator[Edge]:
    peer = Peer(issuer)
    issuer_transport = issuer.transport()

    async def route(request: httpx.Request) -> httpx.Response:
        if request.url.host == "video.test":
            return await peer(request)
        return await issuer_transport.handle_async_request(request)

    migrations = write_migrations(tmp_path / f"migrations-{time.monotonic_ns()}")
    async with httpx.AsyncClient(transport=httpx.MockTransport(route)) as client:
        app = edge_app(
            settings,
            about=About("mail", "Mail, for the tests."),
            database=ServiceDatabase("mail", migrations, lock_id=43),
            routers=[router, checked],
            client=client,
        )
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://mail.test"
            ) as http,
        ):
            yield Edge(app, http, issuer, peer)


@pytest.fixture
async def edge(
    settings: MailSettings, fake_issuer: FakeIssuer, tmp_path: Path
) -> AsyncIterator[Edge]:
    async with running(settings, fake_issuer, tmp_path) as edge:
        yield edge


# -- for_user and as_service ------------------------------------------------------------------


async def test_for_user_calls_with_the_users_token_exchanged(edge: Edge) -> None:
    headers = edge.bearer()
    answer = await edge.http.get("/videos/v1", headers=headers)
    assert answer.status_code == 200, answer.text
    claims = answer.json()["seen"]["claims"]
    assert (claims["sub"], claims["sid"], claims["client_id"]) == ("usr_alice", "ses_1", CLIENT_ID)
    assert claims["act"] == {"sub": CLIENT_ID}
    assert claims["aud"] == ["video"]
    assert claims["scope"] == "video:read"
    grant = edge.issuer.token_grants[0]
    assert (grant["grant_type"], grant["auth_method"], grant["client_id"]) == (
        "urn:ietf:params:oauth:grant-type:token-exchange",
        "private_key_jwt",
        CLIENT_ID,
    )
    await edge.http.get("/videos/v2", headers=headers)
    assert edge.issuer.count("/token") == 1  # the same user token: the exchange is cached
    await edge.http.get("/videos/v2", headers=edge.bearer(sub="usr_bob", sid="ses_2"))
    assert edge.issuer.count("/token") == 2


async def test_as_service_calls_with_its_own_token(edge: Edge) -> None:
    for _ in range(3):
        answer = await edge.http.post("/ping", headers=edge.bearer())
        assert answer.status_code == 200, answer.text
    claims = answer.json()["seen"]["claims"]
    assert claims["sub"] == claims["client_id"] == CLIENT_ID
    assert "sid" not in claims
    assert "act" not in claims
    assert (claims["aud"], claims["scope"]) == (["video"], "video:notify")
    assert edge.issuer.count("/token") == 1


async def test_a_peer_answer_below_500_is_the_routes_to_judge(edge: Edge) -> None:
    edge.peer.status = 404
    answer = await edge.http.get("/videos/v1", headers=edge.bearer())
    assert answer.json()["status"] == 404
    assert edge.peer.count("/videos/v1") == 1


async def test_a_plain_call_needs_no_token(edge: Edge) -> None:
    assert (await edge.http.get("/public")).json() == {"claims": None}


# -- failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "fail_with", "attempts"),
    [
        (503, None, 3),
        (502, None, 3),
        (500, None, 1),  # not a passing condition: not retried
        (200, httpx.ConnectError("refused"), 3),
    ],
    ids=["503", "502", "500", "network"],
)
async def test_a_get_is_retried_then_503_peer_unavailable(
    edge: Edge, status: int, fail_with: Exception | None, attempts: int
) -> None:
    edge.peer.status, edge.peer.fail_with = status, fail_with
    answer = await edge.http.get("/videos/v1", headers=edge.bearer())
    body = expect_problem(answer, 503, "peer_unavailable")
    assert body["peer"] == "video"
    assert "video" in body["detail"]
    assert "Traceback" not in answer.text
    assert answer.headers["retry-after"] == "5"
    assert edge.peer.count("/videos/v1") == attempts


async def test_a_post_is_not_retried(edge: Edge) -> None:
    edge.peer.status = 503
    expect_problem(await edge.http.post("/ping", headers=edge.bearer()), 503, "peer_unavailable")
    assert edge.peer.count("/notify") == 1


async def test_a_slow_peer_times_out(
    settings: MailSettings, fake_issuer: FakeIssuer, tmp_path: Path
) -> None:
    quick = variant(settings, call_timeout=0.2, call_retries=0)
    async with running(quick, fake_issuer, tmp_path) as edge:
        edge.peer.delay = 30  # the test's own timeout would end it long before
        started = time.monotonic()
        answer = await edge.http.get("/videos/v1", headers=edge.bearer())
        expect_problem(answer, 503, "peer_unavailable")
        assert time.monotonic() - started < 10


async def test_no_token_from_the_endpoint_is_peer_unavailable(edge: Edge) -> None:
    edge.issuer.token_fail_with = 503
    answer = await edge.http.post("/ping", headers=edge.bearer())
    body = expect_problem(answer, 503, "peer_unavailable")
    assert "no token" in body["detail"]
    assert edge.peer.seen == []
    edge.issuer.token_fail_with = None
    edge.issuer.token_error = "invalid_client"  # this service refused: its configuration
    expect_problem(await edge.http.get("/videos/v1", headers=edge.bearer()), 503)
    edge.issuer.token_error = "invalid_scope"  # its own token: not the user's doing either
    expect_problem(await edge.http.post("/ping", headers=edge.bearer()), 503)
    assert edge.peer.seen == []


def rejections(edge: Edge) -> dict[str, int]:
    auth = edge.app.state.gatepass_edge_auth
    assert isinstance(auth, EdgeAuth)
    return dict(auth.readiness().rejections)


@pytest.mark.parametrize(
    ("error", "status", "code", "counted"),
    [
        ("invalid_grant", 401, "invalid_token", "refused_by_issuer"),
        ("invalid_scope", 403, "insufficient_scope", "insufficient_scope"),
        ("invalid_target", 403, "insufficient_scope", "insufficient_scope"),
    ],
)
async def test_an_exchange_refused_for_the_user_is_their_answer(
    edge: Edge, error: str, status: int, code: str, counted: str
) -> None:
    """Not an outage: no 503, no Retry-After; the edge's own challenge, counted as its
    rejection. invalid_grant: the user's token is no longer good at the issuer."""
    edge.issuer.token_error = error
    answer = await edge.http.get("/videos/v1", headers=edge.bearer())
    body = expect_problem(answer, status, code)
    challenge = answer.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="mail"')
    assert f'error="{code}"' in challenge
    if status == 403:
        assert body["required_scopes"] == ["video:read"]
        assert 'scope="video:read"' in challenge
    assert "retry-after" not in answer.headers
    assert rejections(edge)[counted] == 1
    assert edge.issuer.count("/token") == 1  # a final answer: not retried
    assert edge.peer.seen == []


async def test_a_scope_the_users_token_lacks_is_refused_without_asking(edge: Edge) -> None:
    """Checked at the door, the user's token lacks video:read: the exchange could only fail,
    so the issuer is not asked."""
    answer = await edge.http.get("/checked/videos/v1", headers=edge.bearer(scope="mail:read"))
    body = expect_problem(answer, 403, "insufficient_scope")
    assert body["required_scopes"] == ["video:read"]
    assert rejections(edge)["insufficient_scope"] == 1
    assert edge.issuer.count("/token") == 0
    assert edge.peer.seen == []
    allowed = await edge.http.get("/checked/videos/v1", headers=edge.bearer())
    assert allowed.json() == {"status": 200}


async def test_a_refused_exchange_of_a_token_string_answers_in_the_calls_realm(
    fake_issuer: FakeIssuer,
) -> None:
    fake_issuer.token_error = "invalid_grant"
    async with fake_issuer.client() as client:
        identity = ClientIdentity.from_secret(CLIENT_ID, SECRET)
        endpoint = TokenEndpoint(client, issuer=fake_issuer.issuer, identity=identity)
        calls = ServiceCalls(client, endpoint=endpoint, realm="mail")
        auth = calls.for_user("a.b.c", "video", "video:read")
        with pytest.raises(ExchangeRefusedError) as refused:
            await calls.get(f"{VIDEO}/videos/v1", auth=auth)
    assert (refused.value.status, refused.value.code, refused.value.error) == (
        401,
        "invalid_token",
        "invalid_grant",
    )
    assert refused.value.headers["www-authenticate"].startswith('Bearer realm="mail"')


async def test_a_call_gets_its_token_once_for_every_attempt() -> None:
    """A retried call sends each attempt with the token it got first: the cache behind the
    token is asked once, whatever it decides."""
    asked: list[str] = []
    seen: list[str | None] = []

    async def token() -> str:
        asked.append(f"token-{len(asked)}")
        return asked[-1]

    def peer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(503 if len(seen) < 3 else 200)

    async def no_sleep(seconds: float) -> None:
        return None

    async with httpx.AsyncClient(transport=httpx.MockTransport(peer)) as client:
        calls = ServiceCalls(client, sleep=no_sleep)
        answer = await calls.get(f"{VIDEO}/videos/v1", auth=TokenAuth(token, "video"))
    assert answer.status_code == 200
    assert asked == ["token-0"]
    assert seen == ["Bearer token-0"] * 3


async def _refused_once_scenario(
    method: str, forget: bool, refuse: Callable[[str], bool] = lambda token: True
) -> tuple[int, list[str], list[str | None], list[str]]:
    """A peer that refuses ``token-0``: the answer's status, the tokens asked for, the
    ``Authorization`` headers the peer saw, and the tokens handed back."""
    asked: list[str] = []
    seen: list[str | None] = []
    handed_back: list[str] = []

    async def token() -> str:
        asked.append(f"token-{len(asked)}")
        return asked[-1]

    def refused(token: str) -> bool:
        handed_back.append(token)
        return forget and refuse(token)

    def peer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(401 if seen[-1] == "Bearer token-0" else 200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(peer)) as client:
        calls = ServiceCalls(client)
        auth = TokenAuth(token, "video", refused)
        if method == "GET":
            answer = await calls.get(f"{VIDEO}/videos/v1", auth=auth)
        else:
            answer = await calls.post(f"{VIDEO}/notify", auth=auth, json={})
    return answer.status_code, asked, seen, handed_back


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_refused_token_is_handed_back_and_the_call_sent_again_with_a_new_one(
    method: str,
) -> None:
    """A red team found video presenting its revoked service token to mail for minutes after
    its client was disabled and enabled again, and mail its revoked exchanged tokens to video.
    A 401 from the peer now hands the token back to its cache; once forgotten there, the call
    is sent again with a new one (a POST too: the peer refused it before doing anything)."""
    status, asked, seen, handed_back = await _refused_once_scenario(method, forget=True)
    assert status == 200
    assert asked == ["token-0", "token-1"]
    assert seen == ["Bearer token-0", "Bearer token-1"]
    assert handed_back == ["token-0"]


async def test_a_refused_token_the_cache_keeps_is_not_tried_again() -> None:
    """The cache keeps a token too young to blame (or one it no longer holds): the 401 is the
    answer, and no new token is asked for."""
    status, asked, seen, handed_back = await _refused_once_scenario("GET", forget=False)
    assert (status, asked, seen, handed_back) == (401, ["token-0"], ["Bearer token-0"], ["token-0"])


async def test_a_call_is_sent_again_once_at_most() -> None:
    asked: list[str] = []

    async def token() -> str:
        asked.append(f"token-{len(asked)}")
        return asked[-1]

    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda request: httpx.Response(401))
    ) as client:
        calls = ServiceCalls(client)
        auth = TokenAuth(token, "video", lambda refused: True)
        answer = await calls.get(f"{VIDEO}/videos/v1", auth=auth)
    assert answer.status_code == 401
    assert asked == ["token-0", "token-1"]


async def test_without_an_identity_only_plain_calls_work(
    settings: MailSettings, fake_issuer: FakeIssuer, tmp_path: Path
) -> None:
    anonymous = variant(settings, client_id=None, client_key_file=None)
    async with running(anonymous, fake_issuer, tmp_path) as edge:
        for answer in (
            await edge.http.post("/ping", headers=edge.bearer()),
            await edge.http.get("/videos/v1", headers=edge.bearer()),
        ):
            body = expect_problem(answer, 503, "peer_unavailable")
            assert "no identity configured" in body["detail"]
        assert (await edge.http.get("/public")).status_code == 200
        assert fake_issuer.count("/token") == 0


async def test_a_client_secret_identity(
    settings: MailSettings, fake_issuer: FakeIssuer, tmp_path: Path
) -> None:
    with_secret = variant(settings, client_key_file=None, client_secret=SECRET)
    async with running(with_secret, fake_issuer, tmp_path) as edge:
        assert (await edge.http.post("/ping", headers=edge.bearer())).status_code == 200
    assert fake_issuer.token_grants[0]["auth_method"] == "client_secret_basic"


async def test_the_calls_open_and_close_their_own_client(settings: MailSettings) -> None:
    async with open_service_calls(settings) as calls:
        assert calls.has_identity
        assert not calls.client.is_closed
        assert calls.client.timeout.read == settings.call_timeout
    assert calls.client.is_closed


def test_peer_unavailable_is_a_503_problem() -> None:
    error = PeerUnavailableError("video")
    assert (error.status, error.code, error.headers) == (
        503,
        "peer_unavailable",
        {"retry-after": "5"},
    )
    assert error.to_dict()["peer"] == "video"


async def test_as_service_without_identity_raises_at_once() -> None:
    async with httpx.AsyncClient() as client:
        calls = ServiceCalls(client)
        with pytest.raises(PeerUnavailableError, match="no identity configured"):
            calls.as_service("video", "video:notify")
        with pytest.raises(PeerUnavailableError, match="no identity configured"):
            calls.for_user("a.b.c", "video", "video:read")


# -- the revocation feed, read with the edge's service token ----------------------------------


def reads_revocations(issuer: FakeIssuer) -> Callable[[str], bool]:
    """The auth service's rule: a service token for ``auth`` with ``revocations:read``."""

    def accepts(token: str) -> bool:
        try:
            claims = issuer.decode(token)
        except Exception:  # noqa: BLE001 - any bad token is refused
            return False
        return (
            claims["sub"] == claims.get("client_id")
            and "sid" not in claims
            and claims["aud"] == ["auth"]
            and "revocations:read" in claims["scope"].split()
        )

    return accepts


async def test_the_feed_is_read_with_a_service_token(
    settings: MailSettings, tmp_path: Path
) -> None:
    issuer = FakeIssuer(clock=time.time, token_endpoint=True, feed=True)
    issuer.feed_accepts = reads_revocations(issuer)
    async with running(settings, issuer, tmp_path) as edge:
        ready = await edge.http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["revocations"] is True
        issuer.revoke_session("ses_1")
        feed = edge.app.state.gatepass_edge_auth.feed
        async with asyncio.timeout(10):
            while feed.cursor != issuer.feed_cursor:
                await asyncio.sleep(0.001)
        expect_problem(await edge.http.get("/videos/v1", headers=edge.bearer()), 401)
    grants = [g for g in issuer.token_grants if g["grant_type"] == "client_credentials"]
    assert grants[0]["audience"] == ["auth"]
    assert grants[0]["scope"] == "revocations:read"
    assert len(grants) == 1  # one token serves every poll until it is due for renewal


async def test_a_feed_token_wins_over_the_identity(settings: MailSettings, tmp_path: Path) -> None:
    issuer = FakeIssuer(clock=time.time, token_endpoint=True, feed=True)
    issuer.feed_tokens = {"feed-token-0123456789"}
    with_token = variant(settings, feed_token="feed-token-0123456789")
    async with running(with_token, issuer, tmp_path) as e:
        assert (await e.http.get("/readyz")).status_code == 200
    assert issuer.count("/token") == 0


async def test_the_feed_audience_is_a_setting(settings: MailSettings, tmp_path: Path) -> None:
    issuer = FakeIssuer(clock=time.time, token_endpoint=True, feed=True)
    other = variant(settings, feed_audience="https://auth.example.test")
    async with running(other, issuer, tmp_path) as edge:
        await edge.http.get("/readyz")
    assert issuer.token_grants[0]["audience"] == ["https://auth.example.test"]


async def test_no_service_token_is_a_feed_failure(clock: ManualClock) -> None:
    issuer = FakeIssuer(clock=clock, token_endpoint=True, feed=True)
    issuer.token_fail_with = 503
    slept: list[float] = []

    async def no_sleep(seconds: float) -> None:
        slept.append(seconds)

    async with issuer.client() as client:
        keyset = RemoteKeySet(client, issuer=issuer.issuer, clock=clock)
        identity = ClientIdentity.from_jwk(
            CLIENT_ID, private_jwk(generate_key("EdDSA"), "e", "EdDSA")
        )
        endpoint = TokenEndpoint(
            client, issuer=issuer.issuer, identity=identity, clock=clock, sleep=no_sleep
        )
        tokens = ServiceTokens(endpoint, audience=["auth"], scope=["revocations:read"], clock=clock)
        feed = RevocationFeed(
            keyset, DenySet(), tokens=tokens, config=FeedConfig(), clock=clock, sleep=clock.sleep
        )
        assert feed.authenticates_with == "service_token"
        async with keyset, feed:
            assert feed.state().errors == {"token_unavailable": 1}
            assert issuer.feed_requests == 0  # never asked without a token
            issuer.token_fail_with = None
            async with asyncio.timeout(10):
                await clock.wait_for_sleepers()
                clock.advance(60)
                while not feed.caught_up:
                    await asyncio.sleep(0.001)
            assert issuer.feed_requests >= 1


async def test_a_feed_token_refused_is_replaced_at_the_next_poll(clock: ManualClock) -> None:
    """The edge's own feed token revoked at the issuer (its client disabled and enabled again):
    the feed's 401 hands it back, and the next poll asks for a new token instead of presenting
    the dead one until it is due for renewal, minutes later, while the edge falls behind."""
    issuer = FakeIssuer(clock=clock, token_endpoint=True, feed=True)
    accepts = reads_revocations(issuer)
    revoked: set[str] = set()
    issuer.feed_accepts = lambda token: token not in revoked and accepts(token)

    async def until(done: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not done():
                clock.advance(1)
                await asyncio.sleep(0.001)

    async with issuer.client() as client:
        keyset = RemoteKeySet(client, issuer=issuer.issuer, clock=clock)
        identity = ClientIdentity.from_jwk(
            CLIENT_ID, private_jwk(generate_key("EdDSA"), "e", "EdDSA")
        )
        endpoint = TokenEndpoint(
            client, issuer=issuer.issuer, identity=identity, clock=clock, sleep=clock.sleep
        )
        tokens = ServiceTokens(endpoint, audience=["auth"], scope=["revocations:read"], clock=clock)
        feed = RevocationFeed(
            keyset, DenySet(), tokens=tokens, config=FeedConfig(), clock=clock, sleep=clock.sleep
        )
        async with keyset, feed:
            first, got_it_at = await tokens.get(), clock()
            await until(lambda: feed.caught_up)
            clock.advance(REFUSAL_MIN_AGE)
            revoked.add(first)
            await until(lambda: feed.state().errors.get("unauthorized", 0) > 0)
            await until(lambda: issuer.count("/token") == 2)
            # Long before it would have been renewed (70 to 80 % of its 300 s).
            assert clock() - got_it_at < 0.7 * 300
            assert await tokens.get() != first


# -- settings ---------------------------------------------------------------------------------


def test_identity_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, key_file: Path
) -> None:
    monkeypatch.setenv("GATEPASS_TESTMAIL_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("GATEPASS_TESTMAIL_CLIENT_KEY_FILE", str(key_file))
    monkeypatch.setenv("GATEPASS_TESTMAIL_CALL_TIMEOUT", "1.5")
    settings = MailSettings()
    assert (settings.client_id, settings.call_timeout, settings.call_retries) == (
        CLIENT_ID,
        1.5,
        2,
    )
    assert settings.feed_audience == "auth"
    assert settings.has_identity
    identity = settings.client_identity()
    assert identity is not None
    assert identity.method == "private_key_jwt"


def test_defaults_have_no_identity() -> None:
    settings = MailSettings()
    assert (settings.call_timeout, settings.call_retries) == (3.0, 2)
    assert not settings.has_identity
    assert settings.client_identity() is None
    alone = MailSettings(client_id=CLIENT_ID)  # a client id alone is no identity
    assert not alone.has_identity
    assert alone.client_identity() is None


@pytest.mark.parametrize(
    ("values", "says"),
    [
        (
            {"client_id": CLIENT_ID, "client_secret": SECRET, "client_key_file": "k.json"},
            "not both",
        ),
        ({"client_secret": SECRET}, "need a client_id"),
        ({"client_key_file": "k.json"}, "need a client_id"),
        ({"call_timeout": 0}, "call_timeout"),
        ({"call_retries": 9}, "call_retries"),
    ],
    ids=["both", "secret-alone", "key-alone", "no-timeout", "many-retries"],
)
def test_identity_settings_are_checked_never_echoed(values: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError) as refused:
        MailSettings(**values)
    message = describe_settings_error(refused.value)  # what the runner prints
    assert says in message
    assert SECRET not in message


@pytest.mark.parametrize(
    "content",
    [None, "{not json", json.dumps({"kty": "OKP", "crv": "Ed25519", "x": "AAAA", "kid": "k"})],
    ids=["missing", "not-json", "public"],
)
def test_an_unusable_key_file_is_a_config_error_without_the_path(
    tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / "secret-place" / "key.json"
    if content is not None:
        path.parent.mkdir()
        path.write_text(content)
    settings = MailSettings(client_id=CLIENT_ID, client_key_file=path)
    with pytest.raises(ConfigError) as refused:
        settings.client_identity()
    message = str(refused.value)
    assert message.startswith("GATEPASS_TESTMAIL_CLIENT_KEY_FILE: ")
    assert "secret-place" not in message
    assert "AAAA" not in message


async def test_an_unusable_key_file_stops_the_start(
    settings: MailSettings, fake_issuer: FakeIssuer, tmp_path: Path
) -> None:
    broken = variant(settings, client_key_file=tmp_path / "missing.json")
    with pytest.raises(ConfigError):
        async with running(broken, fake_issuer, tmp_path):
            pass

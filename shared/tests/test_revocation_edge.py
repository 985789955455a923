"""The revocation feed in an app built from settings alone (``EdgeAuth.from_settings`` and its
lifespan): revoked tokens are 401 on their next request, readiness waits for the first catch-up,
the edge fails closed (503) after ``feed_max_lag``, and the feed's state is exported as metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from gatepass import (
    EdgeAuth,
    EdgeAuthSettings,
    Principal,
    edge_auth,
    edge_auth_settings,
    install_problem_handlers,
)
from gatepass.edge import edge_app
from gatepass.edgetest import EdgeUnderTest, expect_problem, run_edge
from gatepass.service import About, EdgeServiceSettings, ServiceDatabase
from gatepass.settings import describe_settings_error
from gatepass.testing import FakeIssuer, ManualClock

FEED_TOKEN = "feed-token-mail.0123456789"


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Let the app's background tasks run until ``condition`` holds (10 s means a hang)."""
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(0.001)


@dataclass
class Edge:
    auth: EdgeAuth
    http: httpx.AsyncClient
    issuer: FakeIssuer
    clock: ManualClock
    registry: CollectorRegistry

    async def me(self, token: str) -> httpx.Response:
        return await self.http.get("/me", headers={"authorization": f"Bearer {token}"})

    async def synced(self) -> None:
        feed = self.auth.feed
        assert feed is not None
        await until(lambda: feed.cursor == self.issuer.feed_cursor)


def build_app(auth: EdgeAuth) -> FastAPI:
    """An app with no code of its own for the feed: settings, lifespan, install."""
    app = FastAPI(lifespan=auth.lifespan)
    install_problem_handlers(app)
    auth.install(app)

    @app.get("/me")
    async def me(user: Principal) -> dict[str, str]:
        return {"sub": user.sub}

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        state = edge_auth(request).readiness()
        return JSONResponse(state.as_dict(), status_code=200 if state.ready else 503)

    return app


@asynccontextmanager
async def running(issuer: FakeIssuer, clock: ManualClock, **settings: Any) -> AsyncIterator[Edge]:
    config = EdgeAuthSettings(
        issuer=issuer.issuer, audience="mail", feed_token=FEED_TOKEN, **settings
    )
    registry = CollectorRegistry()
    async with issuer.client() as client:
        auth = EdgeAuth.from_settings(
            config, client=client, clock=clock, sleep=clock.sleep, registry=registry
        )
        app = build_app(auth)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://mail.test") as http,
        ):
            yield Edge(auth, http, issuer, clock, registry)


@pytest.fixture
def issuer(clock: ManualClock) -> FakeIssuer:
    issuer = FakeIssuer(clock=clock, feed=True)
    issuer.feed_tokens = {FEED_TOKEN}
    return issuer


@pytest.fixture
async def edge(issuer: FakeIssuer, clock: ManualClock) -> AsyncIterator[Edge]:
    async with running(issuer, clock, feed_max_lag=60) as edge:
        yield edge


# -- revoked tokens --------------------------------------------------------------------------


async def test_a_revoked_token_is_refused_on_its_next_request(edge: Edge) -> None:
    token = edge.issuer.token(sid="ses_1")
    assert (await edge.me(token)).status_code == 200  # now cached
    edge.issuer.revoke_session("ses_1")
    await edge.synced()
    answer = await edge.me(token)
    assert expect_problem(answer, 401, "invalid_token")["reason"] == "revoked"
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]
    assert (await edge.me(edge.issuer.token(sid="ses_2"))).status_code == 200


@pytest.mark.parametrize("kind", ["user", "jti", "key"])
async def test_each_kind_refuses_a_cached_token(edge: Edge, kind: str) -> None:
    issuer = edge.issuer
    if kind == "key":  # a second key first: revoking the only one leaves no usable keys
        issuer.add_key()
        await edge.auth.keyset.refresh()
    token = issuer.token(sub="usr_ann", jti="jti_1")
    assert (await edge.me(token)).status_code == 200
    {
        "user": lambda: issuer.revoke_user("usr_ann"),
        "jti": lambda: issuer.revoke_jti("jti_1"),
        "key": lambda: issuer.revoke_key(issuer.default_kid),
    }[kind]()
    await edge.synced()
    reason = "unknown_kid" if kind == "key" else "revoked"  # the key is gone from the key set
    assert expect_problem(await edge.me(token), 401, "invalid_token")["reason"] == reason


# -- readiness -------------------------------------------------------------------------------


async def test_ready_once_caught_up(edge: Edge) -> None:
    answer = await edge.http.get("/readyz")
    assert answer.status_code == 200
    state = edge.auth.readiness()
    assert state.checks() == {"keys": True, "revocations": True}
    feed = answer.json()["feed"]
    assert (feed["ready"], feed["status"], feed["caught_up"]) == (True, "caught_up", True)
    assert feed["endpoint"] == edge.issuer.feed_url
    assert feed["lag_seconds"] == 0
    assert edge.issuer.count("/.well-known/openid-configuration") == 1


async def test_not_ready_until_caught_up_though_tokens_verify(
    issuer: FakeIssuer, clock: ManualClock
) -> None:
    issuer.feed_fail_with = 503
    async with running(issuer, clock) as edge:
        answer = await edge.http.get("/readyz")
        assert answer.status_code == 503
        feed = answer.json()["feed"]
        assert (feed["status"], feed["last_outcome"], feed["errors"]) == (
            "catching_up",
            "http_error",
            {"http_error": 1},
        )
        assert edge.auth.readiness().checks() == {"keys": True, "revocations": False}
        assert (await edge.me(issuer.token())).status_code == 200  # served meanwhile
        issuer.feed_fail_with = None
        await until(lambda: clock.pending >= 2)  # the key set's refresh and the feed's retry
        clock.advance(1.0)  # the first retry comes within a second
        await until(lambda: edge.auth.readiness().ready)
        assert (await edge.http.get("/readyz")).status_code == 200


async def test_an_issuer_without_a_feed_is_ready_without_one(clock: ManualClock) -> None:
    issuer = FakeIssuer(clock=clock)  # lists none (the default)
    async with running(issuer, clock, feed_max_lag=60) as edge:
        state = edge.auth.readiness()
        assert state.ready
        assert state.feed is not None
        assert state.feed.status == "not_listed"
        assert state.checks() == {"keys": True}
        clock.advance(3600)  # no feed to lag behind: never fails closed
        assert (await edge.me(issuer.token())).status_code == 200
        assert issuer.feed_requests == 0


async def test_a_feed_url_given_is_followed_whatever_discovery_lists(clock: ManualClock) -> None:
    # As in a container: the issuer's public URL does not resolve, keys and feed come privately.
    issuer = FakeIssuer(clock=clock)  # its discovery lists no feed
    issuer.feed_tokens = {FEED_TOKEN}
    settings = {"jwks_url": issuer.jwks_url, "feed_url": issuer.feed_url}
    async with running(issuer, clock, **settings) as edge:
        assert edge.auth.readiness().ready
        token = issuer.token(sid="ses_1")
        assert (await edge.me(token)).status_code == 200
        issuer.revoke_session("ses_1")
        await edge.synced()
        assert (await edge.me(token)).status_code == 401
    assert issuer.count("/.well-known/openid-configuration") == 0


async def test_an_entry_outlives_its_expiry_by_the_edges_leeway(
    issuer: FakeIssuer, clock: ManualClock
) -> None:
    # The issuer's expires_at allows for its own leeway (60 s); an edge that allows 120 s lets a
    # token in until 120 s after its exp, so it keeps the entry that much longer.
    async with running(issuer, clock, leeway=120) as edge:
        token = issuer.token(sid="ses_1", ttl=60)
        assert (await edge.me(token)).status_code == 200
        issuer.revoke_session("ses_1", expires_at=int(clock()) + 60 + 60)
        await edge.synced()
        clock.advance(60 + 90)  # past the event's expires_at, within the edge's leeway
        assert (await edge.me(token)).status_code == 401


async def test_failing_closed_starts_before_the_first_catch_up(
    issuer: FakeIssuer, clock: ManualClock
) -> None:
    # Logged out before the edge started, and the feed does not answer at its start: an edge told
    # to fail closed refuses every token (503) until it knows the revocations, then the revoked one.
    token = issuer.token(sid="ses_gone")
    issuer.revoke_session("ses_gone")
    issuer.feed_fail_with = 503
    async with running(issuer, clock, feed_max_lag=60) as edge:
        assert (await edge.http.get("/readyz")).status_code == 503
        expect_problem(await edge.me(token), 503, "temporarily_unavailable")
        expect_problem(await edge.me(issuer.token(sid="ses_other")), 503, "temporarily_unavailable")
        issuer.feed_fail_with = None
        async with asyncio.timeout(10):  # the follower retries after its backoff
            while not edge.auth.readiness().ready:
                clock.advance(1)
                await asyncio.sleep(0.001)
        assert (await edge.me(token)).status_code == 401
        assert (await edge.me(issuer.token(sid="ses_other"))).status_code == 200


async def test_the_feed_can_be_turned_off(issuer: FakeIssuer, clock: ManualClock) -> None:
    async with running(issuer, clock, revocation_feed=False) as edge:
        state = edge.auth.readiness()
        assert state.ready
        assert state.feed is not None
        assert state.feed.status == "disabled"
        assert edge.auth.verifier.revocations is None  # nothing on the request path
        assert issuer.feed_requests == 0


# -- failing closed --------------------------------------------------------------------------


async def test_past_the_max_lag_every_token_is_503_until_the_feed_answers(edge: Edge) -> None:
    issuer, clock = edge.issuer, edge.clock
    token = issuer.token(ttl=3600)
    assert (await edge.me(token)).status_code == 200
    await until(lambda: issuer.feed_waiting == 1)  # a long poll in flight, answering nothing
    clock.advance(60)
    assert (await edge.me(token)).status_code == 200  # 60 s: the limit, not past it
    clock.advance(1)
    answer = await edge.me(token)
    body = expect_problem(answer, 503, "temporarily_unavailable")
    assert body["reason"] == "revocations_stale"
    assert int(answer.headers["retry-after"]) >= 1
    assert "www-authenticate" not in answer.headers  # an outage is never a logout
    assert (await edge.me(issuer.token())).status_code == 503  # fresh tokens alike
    ready = await edge.http.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["feed"]["fail_closed"] is True
    issuer.revoke_jti("jti_other")  # the long poll answers: current again
    await edge.synced()
    assert (await edge.me(token)).status_code == 200
    assert edge.auth.readiness().ready


async def test_without_a_max_lag_a_silent_feed_never_fails_closed(
    issuer: FakeIssuer, clock: ManualClock
) -> None:
    async with running(issuer, clock) as edge:
        await until(lambda: issuer.feed_waiting == 1)
        issuer.feed_fail_with = httpx.ConnectError("down")
        clock.advance(3600)
        assert (await edge.me(issuer.token())).status_code == 200
        assert edge.auth.readiness().ready


# -- metrics ---------------------------------------------------------------------------------


async def test_the_feed_state_is_exported_as_metrics(edge: Edge) -> None:
    edge.issuer.revoke_session("ses_1")
    edge.issuer.revoke_user("usr_ann")
    await edge.synced()
    edge.clock.advance(5)
    metrics = generate_latest(edge.registry).decode()
    expected = [
        "gatepass_edge_revocation_feed_listed 1.0",
        "gatepass_edge_revocation_feed_caught_up 1.0",
        "gatepass_edge_revocation_feed_fail_closed 0.0",
        "gatepass_edge_revocation_feed_lag_seconds 5.0",
        "gatepass_edge_revocation_feed_last_event_timestamp_seconds 1.7e+09",
        'gatepass_edge_revocation_feed_events_total{kind="session"} 1.0',
        'gatepass_edge_revocation_feed_events_total{kind="user"} 1.0',
        'gatepass_edge_revocations_live{kind="session"} 1.0',
        'gatepass_edge_revocations_live{kind="jti"} 0.0',
    ]
    for line in expected:
        assert line in metrics, line
    assert "gatepass_edge_revocation_feed_answers_total" in metrics
    assert "gatepass_edge_revocation_feed_errors_total" in metrics


# -- settings --------------------------------------------------------------------------------


def test_the_feed_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEPASS_MAIL_AUDIENCE", "mail")
    monkeypatch.setenv("GATEPASS_MAIL_FEED_TOKEN", FEED_TOKEN)
    monkeypatch.setenv("GATEPASS_MAIL_FEED_MAX_LAG", "90")
    monkeypatch.setenv("GATEPASS_MAIL_FEED_WAIT", "20")
    settings = edge_auth_settings("GATEPASS_MAIL_")
    config = settings.feed_config()
    assert (config.enabled, config.wait, config.max_lag) == (True, 20, 90)
    assert settings.feed_bearer == FEED_TOKEN
    assert FEED_TOKEN not in repr(settings)
    defaults = EdgeAuthSettings(audience="mail")
    assert (defaults.revocation_feed, defaults.feed_token, defaults.feed_max_lag) == (
        True,
        None,
        None,
    )
    assert defaults.feed_wait == 25


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"feed_max_lag": 20}, "feed_max_lag must be longer than feed_wait"),
        ({"feed_wait": 31}, "feed_wait: "),
        ({"feed_max_lag": 0}, "feed_max_lag: "),
        ({"feed_token": "s3cret token\r\n"}, "feed_token: Value error, must be a bearer token"),
    ],
)
def test_bad_feed_settings_are_named_never_echoed(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        EdgeAuthSettings(audience="mail", **values)
    described = describe_settings_error(refused.value)
    assert message in described
    for value in values.values():
        if isinstance(value, str):
            assert value not in described
            assert "s3cret" not in described


# -- an edge built with edge_app: /readyz ----------------------------------------------------

ENV_PY = """
from sqlalchemy import MetaData

from gatepass.alembic_env import run_migrations

run_migrations(MetaData())
"""


class ProbeSettings(EdgeServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEPASS_PROBE_", extra="ignore")
    audience: str = "probe"


@asynccontextmanager
async def probe_edge(issuer: FakeIssuer, tmp_path: Path) -> AsyncIterator[EdgeUnderTest]:
    migrations = tmp_path / "migrations"
    (migrations / "versions").mkdir(parents=True)
    (migrations / "env.py").write_text(ENV_PY)

    def create_app(settings: ProbeSettings, client: httpx.AsyncClient | None = None) -> FastAPI:
        return edge_app(
            settings,
            about=About("probe", "An edge with nothing but its probes."),
            database=ServiceDatabase("probe", migrations, lock_id=44),
            routers=[],
            client=client,
        )

    settings = ProbeSettings(issuer=issuer.issuer, data_dir=tmp_path / "data")
    async with run_edge(create_app, settings, issuer) as running_edge:
        yield running_edge


async def test_an_edges_readyz_checks_the_feed(tmp_path: Path) -> None:
    issuer = FakeIssuer(clock=time.time, feed=True)
    async with probe_edge(issuer, tmp_path) as edge:
        ready = (await edge.http.get("/readyz")).json()
        assert ready["checks"] == {"keys": True, "revocations": True, "database": True}
        assert ready["keyset"]["feed"]["status"] == "caught_up"
        metrics = (await edge.http.get("/metrics")).text
        assert "gatepass_edge_revocation_feed_caught_up 1.0" in metrics


async def test_an_edge_is_not_ready_before_catching_up(tmp_path: Path) -> None:
    issuer = FakeIssuer(clock=time.time, feed=True)
    issuer.feed_fail_with = httpx.ConnectError("refused")
    async with probe_edge(issuer, tmp_path) as edge:
        body = expect_problem(await edge.http.get("/readyz"), 503, "not_ready")
        assert body["checks"] == {"keys": True, "revocations": False, "database": True}
        assert body["detail"] == "Failing checks: revocations."
        assert body["keyset"]["feed"]["last_outcome"] == "network_error"

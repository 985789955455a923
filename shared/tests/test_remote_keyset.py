"""The remote key set: discovery, caching, single flight, cooldown, staleness, last-known-good."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import string
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from gatepass import (
    BadSignatureError,
    KeySetConfig,
    MalformedTokenError,
    NoUsableKeysError,
    RemoteKeySet,
    TokenError,
    UnknownKidError,
    Verifier,
    register_metrics,
)
from gatepass.testing import FakeIssuer, ManualClock

DISCOVERY = "/.well-known/openid-configuration"


def make_keyset(
    client: httpx.AsyncClient,
    issuer: FakeIssuer,
    clock: ManualClock,
    *,
    direct: bool = False,
    snapshot_path: Path | None = None,
    jitter: float = 0.5,
    **config: Any,
) -> RemoteKeySet:
    return RemoteKeySet(
        client,
        issuer=None if direct else issuer.issuer,
        jwks_url=issuer.jwks_url if direct else None,
        config=KeySetConfig(**config),
        snapshot_path=snapshot_path,
        clock=clock,
        sleep=clock.sleep,
        random=lambda: jitter,
    )


def verifier_for(keyset: RemoteKeySet, issuer: FakeIssuer, clock: ManualClock) -> Verifier:
    return Verifier(keyset, issuer=issuer.issuer, audience="mail", clock=clock, stats=keyset.stats)


def random_kid() -> str:
    return "".join(random.choices(string.ascii_letters + string.digits, k=16))


# -- discovery and fetching -----------------------------------------------------------------


async def test_discovers_the_jwks_from_the_issuer(
    client: httpx.AsyncClient, issuer: FakeIssuer, clock: ManualClock
) -> None:
    async with make_keyset(client, issuer, clock) as keyset:
        state = keyset.state()
        assert state.usable
        assert state.ready
        assert state.jwks_uri == issuer.jwks_url
        assert state.kids == (issuer.default_kid,)
        assert issuer.count(DISCOVERY) == 1
        assert issuer.jwks_requests == 1
        await keyset.refresh()
        assert issuer.count(DISCOVERY) == 1  # discovered once


async def test_a_jwks_url_skips_discovery(
    client: httpx.AsyncClient, issuer: FakeIssuer, clock: ManualClock
) -> None:
    async with make_keyset(client, issuer, clock, direct=True) as keyset:
        assert keyset.usable()
        assert issuer.count(DISCOVERY) == 0


async def test_a_moved_jwks_is_discovered_again(
    client: httpx.AsyncClient, issuer: FakeIssuer, clock: ManualClock
) -> None:
    async with make_keyset(client, issuer, clock) as keyset:
        issuer.jwks_url = issuer.issuer + "/keys/v2"
        assert not await keyset.refresh()  # 404 at the old address
        assert await keyset.refresh()
        assert keyset.state().jwks_uri == issuer.jwks_url
        assert issuer.count(DISCOVERY) == 2


@pytest.mark.parametrize(
    "document",
    [
        {"issuer": "https://evil.test", "jwks_uri": "https://evil.test/jwks"},
        {"issuer": "https://auth.example.test"},
        {"issuer": "https://auth.example.test", "jwks_uri": "http://auth.example.test/jwks"},
        {"issuer": "https://auth.example.test", "jwks_uri": "file:///etc/passwd"},
    ],
    ids=["other-issuer", "no-jwks-uri", "https-downgrade", "not-http"],
)
async def test_a_bad_discovery_document_gives_no_keys(
    document: dict[str, Any], issuer: FakeIssuer, clock: ManualClock
) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=document))
    async with (
        httpx.AsyncClient(transport=transport) as client,
        make_keyset(client, issuer, clock) as keyset,
    ):
        assert not keyset.usable()
        assert keyset.state().last_fetch_outcome == "discovery_error"
        with pytest.raises(NoUsableKeysError):
            await keyset.get("any")


@pytest.mark.parametrize(
    ("direct", "outcome"), [(False, "discovery_error"), (True, "invalid_document")]
)
async def test_a_document_nested_past_the_parser_limit_is_a_failed_fetch(
    direct: bool, outcome: str, issuer: FakeIssuer, clock: ManualClock
) -> None:
    """Not a RecursionError that would stop the refresh loop: a failed fetch, counted."""
    nested = b"[" * 5000 + b"]" * 5000
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=nested))
    async with (
        httpx.AsyncClient(transport=transport) as client,
        make_keyset(client, issuer, clock, direct=direct) as keyset,
    ):
        assert not keyset.usable()
        assert keyset.state().last_fetch_outcome == outcome


async def test_etag_revalidation_keeps_keys_and_extends_freshness(
    client: httpx.AsyncClient, issuer: FakeIssuer, clock: ManualClock
) -> None:
    async with make_keyset(client, issuer, clock) as keyset:
        first = keyset.state()
        clock.advance(100)
        assert await keyset.refresh()
        second = keyset.state()
        assert issuer.requests[-1].headers["if-none-match"]
        assert second.last_fetch_outcome == "not_modified"
        assert second.kids == first.kids
        assert second.fresh_until == first.fresh_until + 100  # type: ignore[operator]
        assert second.fetches == {"ok": 1, "not_modified": 1}


@pytest.mark.parametrize(
    ("max_age", "ttl"),
    [(5, 60), (600, 600), (10**7, 86400), (None, 300)],
    ids=["below-min", "within", "above-max", "absent"],
)
async def test_max_age_is_honoured_within_bounds(
    max_age: int | None,
    ttl: float,
    client: httpx.AsyncClient,
    issuer: FakeIssuer,
    clock: ManualClock,
) -> None:
    issuer.max_age = max_age
    async with make_keyset(client, issuer, clock) as keyset:
        assert keyset.state().fresh_until == clock() + ttl


async def test_no_store_counts_as_the_minimum_lifetime(
    issuer: FakeIssuer, clock: ManualClock
) -> None:
    body = json.dumps(issuer.jwks())
    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, text=body, headers={"cache-control": "no-store"})
    )
    async with (
        httpx.AsyncClient(transport=transport) as client,
        make_keyset(client, issuer, clock, direct=True) as keyset,
    ):
        assert keyset.state().fresh_until == clock() + 60


# -- background refresh ---------------------------------------------------------------------


@pytest.mark.parametrize(("jitter", "fraction"), [(0.0, 0.9), (1.0, 0.75)])
async def test_refreshes_in_the_background_ahead_of_expiry(
    jitter: float,
    fraction: float,
    client: httpx.AsyncClient,
    issuer: FakeIssuer,
    clock: ManualClock,
) -> None:
    async with make_keyset(client, issuer, clock, jitter=jitter) as keyset:
        async with asyncio.timeout(5):
            await clock.wait_for_sleepers()
        assert clock.next_wake == pytest.approx(300 * fraction)
        new_kid = issuer.add_key()
        clock.advance(300 * fraction)
        async with asyncio.timeout(5):
            await clock.wait_for_sleepers()
        assert issuer.jwks_requests == 2
        assert new_kid in keyset.state().kids
        assert keyset.state().next_refresh_at == pytest.approx(clock() + 300 * fraction)


async def test_background_retries_back_off_from_the_cooldown(
    client: httpx.AsyncClient, issuer: FakeIssuer, clock: ManualClock
) -> None:
    issuer.fail_with = 503
    async with make_keyset(client, issuer, clock, jitter=0.0) as keyset:
        waits = []
        for _ in range(5):
            async with asyncio.timeout(5):
                await clock.wait_for_sleepers()
            assert clock.next_wake is not None
            waits.append(clock.next_wake)
            clock.advance(clock.next_wake)
        async with asyncio.timeout(5):
            await clock.wait_for_sleepers()
        assert waits == [30, 60, 120, 240, 300]
        assert keyset.stats.fetches == {"discovery_error": 6}


# -- unknown kids ---------------------------------------------------------------------------


async def test_a_flood_of_random_kids_costs_one_fetch_per_cooldown(
    client: httpx.AsyncClient, issuer: FakeIssuer, clock: ManualClock
) -> None:
    async with make_keyset(client, issuer, clock) as keyset:
        verifier = verifier_for(keyset, issuer, clock)
        clock.advance(31)  # past the cooldown of the start-up fetch
        issuer.gate = asyncio.Event()  # hold the fetch in flight while the flood arrives
        tokens = [issuer.token(headers={"kid": random_kid()}) for _ in range(2000)]
        tasks = [asyncio.create_task(verifier.verify(token)) for token in tokens]
        await asyncio.sleep(0)
        issuer.gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(result, UnknownKidError) for result in results)
        assert issuer.jwks_requests == 2  # start-up, plus one for the whole flood

        more = [issuer.token(headers={"kid": random_kid()}) for _ in range(100)]
        for token in more:
            with pytest.raises(UnknownKidError):
                await verifier.verify(token)
        assert issuer.jwks_requests == 2  # within the cooldown: no fetch at all

        clock.advance(30)
        with pytest.raises(UnknownKidError):
            await verifier.verify(issuer.token(headers={"kid": random_kid()}))
        assert issuer.jwks_requests == 3
        assert keyset.stats.rejections == {"unknown_kid": 2101}


async def test_a_new_key_is_found_by_its_kid(
    client: httpx.AsyncClient, issuer: FakeIssuer, clock: ManualClock
) -> None:
    async with make_keyset(client, issuer, clock) as keyset:
        verifier = verifier_for(keyset, issuer, clock)
        new_kid = issuer.add_key()
        clock.advance(30)
        principal = await verifier.verify(issuer.token(kid=new_kid))
        assert principal.sub == "user-1"
        assert issuer.jwks_requests == 2


async def test_the_cooldown_counts_failed_fetches(
    client: httpx.AsyncClient, issuer: FakeIssuer, clock: ManualClock
) -> None:
    async with make_keyset(client, issuer, clock) as keyset:
        clock.advance(30)
        issuer.fail_with = httpx.ConnectError("down")
        with pytest.raises(UnknownKidError):
            await keyset.get("kid-1")
        assert issuer.jwks_requests == 2
        clock.advance(29)
        issuer.fail_with = None
        with pytest.raises(UnknownKidError):
            await keyset.get("kid-2")
        assert issuer.jwks_requests == 2
        clock.advance(1)
        with pytest.raises(UnknownKidError):
            await keyset.get("kid-3")
        assert issuer.jwks_requests == 3


async def test_unknown_kids_are_remembered(
    client: httpx.AsyncClient, issuer: FakeIssuer, clock: ManualClock
) -> None:
    async with make_keyset(client, issuer, clock, negative_ttl=300) as keyset:
        clock.advance(30)
        with pytest.raises(UnknownKidError):
            await keyset.get("ghost")
        clock.advance(60)
        with pytest.raises(UnknownKidError):
            await keyset.get("ghost")
        assert issuer.jwks_requests == 2  # the negative cache answered
        with pytest.raises(UnknownKidError):
            await keyset.get("another")
        assert issuer.jwks_requests == 3
        clock.advance(300)
        issuer.add_key(kid="ghost")
        assert (await keyset.get("ghost")).kid == "ghost"


async def test_a_malformed_kid_never_fetches(
    client: httpx.AsyncClient, issuer: FakeIssuer, clock: ManualClock
) -> None:
    async with make_keyset(client, issuer, clock) as keyset:
        clock.advance(30)
        for kid in ["", "a" * 129, "bad kid", "kid\n", "ключ"]:
            with pytest.raises(MalformedTokenError):
                await keyset.get(kid)
        assert issuer.jwks_requests == 1


async def test_a_bad_signature_under_a_known_key_never_fetches(
    client: httpx.AsyncClient, issuer: FakeIssuer, clock: ManualClock
) -> None:
    async with make_keyset(client, issuer, clock) as keyset:
        verifier = verifier_for(keyset, issuer, clock)
        head, payload, _ = issuer.token().split(".")
        other = FakeIssuer(clock=clock)
        forged_signature = other.token().split(".")[2]
        for _ in range(3):
            clock.advance(31)
            with pytest.raises(BadSignatureError):
                await verifier.verify(f"{head}.{payload}.{forged_signature}")
        assert issuer.jwks_requests == 1


# -- outages --------------------------------------------------------------------------------


async def test_an_outage_is_survived_until_max_staleness(
    client: httpx.AsyncClient, issuer: FakeIssuer, clock: ManualClock
) -> None:
    async with make_keyset(client, issuer, clock, max_staleness=12 * 3600) as keyset:
        verifier = verifier_for(keyset, issuer, clock)
        issuer.fail_with = httpx.ConnectError("down")
        clock.advance(12 * 3600 - 300)
        assert not await keyset.refresh()
        assert keyset.state().kids == (issuer.default_kid,)  # a failed fetch keeps the keys
        assert await verifier.verify(issuer.token())
        assert keyset.state().usable
        assert not keyset.state().fresh

        clock.advance(301)
        with pytest.raises(NoUsableKeysError) as caught:
            await verifier.verify(issuer.token())
        assert not isinstance(caught.value, TokenError)
        assert caught.value.retry_after >= 1
        assert not keyset.state().ready

        issuer.fail_with = None
        clock.advance(30)
        assert await verifier.verify(issuer.token())  # the first request after recovery fetches


@pytest.mark.parametrize(
    ("response", "outcome"),
    [
        (httpx.Response(500), "http_error"),
        (httpx.Response(200, text="not json"), "invalid_document"),
        (httpx.Response(200, json={"keys": []}), "no_keys"),
        (httpx.Response(200, json={"keys": [{"kty": "EC", "d": "x"}]}), "no_keys"),
        (httpx.Response(200, content=b"x" * 70_000), "too_large"),
        (httpx.Response(304), "unexpected_not_modified"),
    ],
    ids=["500", "not-json", "empty", "only-bad-keys", "too-large", "304-without-keys"],
)
async def test_a_failed_fetch_never_wipes_the_cache(
    response: httpx.Response, outcome: str, issuer: FakeIssuer, clock: ManualClock
) -> None:
    good = issuer.transport()
    broken = False

    async def handler(request: httpx.Request) -> httpx.Response:
        if not broken:
            return await good.handle_async_request(request)
        return response

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client,
        make_keyset(client, issuer, clock, direct=True) as keyset,
    ):
        broken = True
        if outcome == "unexpected_not_modified":
            keyset._keys.clear()
        assert not await keyset.refresh()
        assert keyset.state().last_fetch_outcome == outcome
        if outcome != "unexpected_not_modified":
            assert keyset.state().kids == (issuer.default_kid,)


async def test_a_streamed_body_over_the_limit_is_refused(
    issuer: FakeIssuer, clock: ManualClock
) -> None:
    async def chunks() -> Any:
        for _ in range(100):
            yield b"x" * 1024

    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=chunks()))
    async with (
        httpx.AsyncClient(transport=transport) as client,
        make_keyset(client, issuer, clock, direct=True) as keyset,
    ):
        assert keyset.state().last_fetch_outcome == "too_large"


async def test_a_timeout_is_a_failed_fetch(issuer: FakeIssuer, clock: ManualClock) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(10)
        return httpx.Response(200)

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(slow)) as client,
        make_keyset(client, issuer, clock, direct=True, fetch_timeout=0.01) as keyset,
    ):
        assert keyset.state().last_fetch_outcome == "timeout"


async def test_a_read_timeout_is_a_failed_fetch(issuer: FakeIssuer, clock: ManualClock) -> None:
    issuer.fail_with = httpx.ReadTimeout("slow")
    async with issuer.client() as client, make_keyset(client, issuer, clock, direct=True) as ks:
        assert ks.state().last_fetch_outcome == "timeout"


async def test_removed_keys_leave_and_listeners_hear_it(
    client: httpx.AsyncClient, issuer: FakeIssuer, clock: ManualClock
) -> None:
    old = issuer.default_kid
    async with make_keyset(client, issuer, clock) as keyset:
        heard: list[frozenset[str]] = []
        keyset.add_listener(heard.append)
        issuer.add_key()
        issuer.remove_key(old)
        await keyset.refresh()
        assert old not in keyset.state().kids
        assert heard == [frozenset({old})]


async def test_a_revoked_key_stays_out(
    client: httpx.AsyncClient, issuer: FakeIssuer, clock: ManualClock
) -> None:
    kid = issuer.default_kid
    issuer.add_key()
    async with make_keyset(client, issuer, clock) as keyset:
        keyset.revoke_key(kid)
        clock.advance(30)
        with pytest.raises(UnknownKidError):
            await keyset.get(kid)
        await keyset.refresh()
        assert kid not in keyset.state().kids


# -- the last-known-good copy ---------------------------------------------------------------


async def test_starts_from_the_last_known_good_copy(
    client: httpx.AsyncClient, issuer: FakeIssuer, clock: ManualClock, tmp_path: Path
) -> None:
    path = tmp_path / "jwks" / "last-known-good.json"
    async with make_keyset(client, issuer, clock, snapshot_path=path):
        pass
    assert json.loads(path.read_text())["keys"][0]["kid"] == issuer.default_kid
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left

    issuer.fail_with = httpx.ConnectError("down")
    clock.advance(3600)
    async with make_keyset(client, issuer, clock, snapshot_path=path) as keyset:
        verifier = verifier_for(keyset, issuer, clock)
        assert await verifier.verify(issuer.token())
        assert keyset.state().age_seconds == 3600
        clock.advance(12 * 3600)
        with pytest.raises(NoUsableKeysError):
            await verifier.verify(issuer.token())


async def test_a_revalidation_rewrites_the_copy(
    client: httpx.AsyncClient, issuer: FakeIssuer, clock: ManualClock, tmp_path: Path
) -> None:
    path = tmp_path / "lkg.json"
    async with make_keyset(client, issuer, clock, snapshot_path=path) as keyset:
        clock.advance(100)
        await keyset.refresh()
    assert json.loads(path.read_text())["validated_at"] == clock()


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[]", b'{"version": 1}', b'{"version": 99}', b"\xff\xfe", b"[" * 5000],
    ids=["not-json", "list", "incomplete", "other-version", "binary", "nested-deep"],
)
async def test_a_corrupt_copy_is_ignored_with_a_warning(
    content: bytes,
    issuer: FakeIssuer,
    clock: ManualClock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "lkg.json"
    path.write_bytes(content)
    issuer.fail_with = 503
    with caplog.at_level(logging.WARNING, logger="gatepass.core.jwks"):
        async with (
            issuer.client() as client,
            make_keyset(client, issuer, clock, snapshot_path=path) as keyset,
        ):
            assert not keyset.usable()
    assert "corrupt last-known-good" in caplog.text


async def test_a_copy_of_another_issuer_is_ignored(
    client: httpx.AsyncClient, issuer: FakeIssuer, clock: ManualClock, tmp_path: Path
) -> None:
    path = tmp_path / "lkg.json"
    async with make_keyset(client, issuer, clock, snapshot_path=path):
        pass
    other = FakeIssuer("https://other.example.test", clock=clock)
    other.fail_with = 503
    async with (
        other.client() as other_client,
        make_keyset(other_client, other, clock, snapshot_path=path) as keyset,
    ):
        assert not keyset.usable()


async def test_a_copy_dated_in_the_future_counts_from_now(
    client: httpx.AsyncClient, issuer: FakeIssuer, clock: ManualClock, tmp_path: Path
) -> None:
    path = tmp_path / "lkg.json"
    async with make_keyset(client, issuer, clock, snapshot_path=path):
        pass
    document = json.loads(path.read_text())
    document["validated_at"] += 10**6
    path.write_text(json.dumps(document))
    issuer.fail_with = 503
    async with make_keyset(client, issuer, clock, snapshot_path=path) as keyset:
        assert keyset.state().age_seconds == 0


async def test_an_unwritable_copy_is_only_a_warning(
    client: httpx.AsyncClient,
    issuer: FakeIssuer,
    clock: ManualClock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING, logger="gatepass.core.jwks"):
        async with make_keyset(client, issuer, clock, snapshot_path=blocker / "lkg.json") as ks:
            assert ks.usable()
    assert "cannot write" in caplog.text


# -- state, metrics, life cycle -------------------------------------------------------------


async def test_metrics_are_read_at_scrape_time(
    client: httpx.AsyncClient, issuer: FakeIssuer, clock: ManualClock
) -> None:
    registry = CollectorRegistry()
    async with make_keyset(client, issuer, clock) as keyset:
        register_metrics(registry, keyset.state)
        clock.advance(42)
        text = generate_latest(registry).decode()
    assert 'gatepass_edge_jwks_fetches_total{outcome="ok"} 1.0' in text
    assert "gatepass_edge_jwks_age_seconds 42.0" in text
    assert "gatepass_edge_jwks_keys 1.0" in text
    assert "gatepass_edge_jwks_usable 1.0" in text


async def test_state_as_dict_is_json_ready(
    client: httpx.AsyncClient, issuer: FakeIssuer, clock: ManualClock
) -> None:
    async with make_keyset(client, issuer, clock) as keyset:
        body = keyset.state().as_dict()
    assert json.loads(json.dumps(body))["ready"] is True


async def test_without_a_client_the_set_opens_and_closes_its_own(clock: ManualClock) -> None:
    keyset = RemoteKeySet(jwks_url="http://127.0.0.1:9/jwks", clock=clock, sleep=clock.sleep)
    async with keyset:
        assert keyset.state().last_fetch_outcome == "network_error"
    assert keyset._fetcher.client is None


def test_a_source_is_required() -> None:
    with pytest.raises(ValueError, match="issuer"):
        RemoteKeySet()
    with pytest.raises(ValueError, match="URL"):
        RemoteKeySet(jwks_url="ftp://x/jwks")


@pytest.mark.parametrize(
    "config",
    [{"min_ttl": 0}, {"min_ttl": 500}, {"max_ttl": 100}, {"cooldown": 0}, {"max_staleness": -1}],
)
def test_config_is_checked(config: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must"):
        KeySetConfig(**config)

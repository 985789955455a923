"""The revocation feed follower against the fake issuer's feed: each kind of event refuses the
right tokens (cached ones too), snapshots replace, pages are followed, failures back off with
jitter and never drop what the edge has, and discovery is read once for the JWKS and the feed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from gatepass import (
    DenySet,
    FeedConfig,
    KeysUnavailableError,
    RemoteKeySet,
    RevocationFeed,
    RevokedTokenError,
    TokenCache,
    UnknownKidError,
    Verifier,
)
from gatepass.core.revocations import CLIENT, Revocation
from gatepass.core.stats import FEED_CAUGHT_UP, FEED_NOT_LISTED
from gatepass.testing import REVOCATION_TTL, FakeIssuer, ManualClock

DISCOVERY = "/.well-known/openid-configuration"
FEED = "/revocations"


class Sleeps:
    """The follower's sleep: records each delay, then waits for the manual clock."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await self.clock.sleep(seconds)

    async def delay(self, number: int) -> float:
        """The ``number``-th delay (from 1), once the follower sleeps it."""
        await until(lambda: len(self.delays) >= number)
        return self.delays[number - 1]


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Let the follower run until ``condition`` holds (it needs milliseconds; 10 s is a hang)."""
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(0.001)


@pytest.fixture
def issuer(clock: ManualClock) -> FakeIssuer:
    return FakeIssuer(clock=clock, feed=True)


@pytest.fixture
def sleeps(clock: ManualClock) -> Sleeps:
    return Sleeps(clock)


@pytest.fixture
async def keyset(
    client: httpx.AsyncClient, issuer: FakeIssuer, clock: ManualClock
) -> AsyncIterator[RemoteKeySet]:
    async with RemoteKeySet(client, issuer=issuer.issuer, clock=clock, sleep=clock.sleep) as keys:
        yield keys


@pytest.fixture
def denyset() -> DenySet:
    return DenySet()


@pytest.fixture
def verifier(
    keyset: RemoteKeySet, issuer: FakeIssuer, clock: ManualClock, denyset: DenySet
) -> Verifier:
    return Verifier(
        keyset,
        issuer=issuer.issuer,
        audience="mail",
        clock=clock,
        cache=TokenCache(100),
        revocations=denyset,
    )


def follower(
    keyset: RemoteKeySet,
    denyset: DenySet,
    clock: ManualClock,
    sleeps: Sleeps,
    *,
    cache: TokenCache | None = None,
    random: float = 0.5,
    **config: Any,
) -> RevocationFeed:
    return RevocationFeed(
        keyset,
        denyset,
        token="feed-token-mail",
        config=FeedConfig(**config),
        cache=cache,
        clock=clock,
        sleep=sleeps,
        random=lambda: random,
    )


@pytest.fixture
async def feed(
    keyset: RemoteKeySet, denyset: DenySet, verifier: Verifier, clock: ManualClock, sleeps: Sleeps
) -> AsyncIterator[RevocationFeed]:
    async with follower(keyset, denyset, clock, sleeps, cache=verifier.cache) as running:
        yield running


async def synced(feed: RevocationFeed, issuer: FakeIssuer) -> None:
    await until(lambda: feed.cursor == issuer.feed_cursor)


# -- each kind refuses the right tokens, cached ones included --------------------------------


async def test_caught_up_at_start_with_one_discovery(
    feed: RevocationFeed, issuer: FakeIssuer
) -> None:
    state = feed.state()
    assert (state.status, state.caught_up, state.ready) == (FEED_CAUGHT_UP, True, True)
    assert state.endpoint == issuer.feed_url
    assert issuer.count(DISCOVERY) == 1  # the key set's read serves the feed too
    first = next(r for r in issuer.requests if r.url.path == FEED)
    assert first.url.params["wait"] == "0"
    assert "cursor" not in first.url.params
    assert first.headers["authorization"] == "Bearer feed-token-mail"


async def test_a_revoked_session_is_refused_even_from_the_cache(
    feed: RevocationFeed, verifier: Verifier, issuer: FakeIssuer
) -> None:
    mine, other = issuer.token(sid="ses_1"), issuer.token(sid="ses_2")
    await verifier.verify(mine)
    await verifier.verify(other)
    assert verifier.cache is not None
    assert len(verifier.cache) == 2
    issuer.revoke_session("ses_1")
    await synced(feed, issuer)
    assert len(verifier.cache) == 1  # dropped from the cache as well
    with pytest.raises(RevokedTokenError):
        await verifier.verify(mine)
    await verifier.verify(other)
    assert verifier.stats.rejections["revoked"] == 1


async def test_a_revoked_user_refuses_tokens_issued_before_only(
    feed: RevocationFeed, verifier: Verifier, issuer: FakeIssuer, clock: ManualClock
) -> None:
    before = issuer.token(sub="usr_ann")
    await verifier.verify(before)
    issuer.revoke_user("usr_ann")  # not_before: the next second
    await synced(feed, issuer)
    with pytest.raises(RevokedTokenError):
        await verifier.verify(before)
    await verifier.verify(issuer.token(sub="usr_bob"))
    clock.advance(1)
    assert (await verifier.verify(issuer.token(sub="usr_ann"))).sub == "usr_ann"


async def test_a_revoked_jti_refuses_that_token_though_it_stays_cached(
    feed: RevocationFeed, verifier: Verifier, issuer: FakeIssuer
) -> None:
    token = issuer.token(jti="jti_1")
    await verifier.verify(token)
    issuer.revoke_jti("jti_1")
    await synced(feed, issuer)
    assert verifier.cache is not None
    assert len(verifier.cache) == 1
    with pytest.raises(RevokedTokenError):
        await verifier.verify(token)
    await verifier.verify(issuer.token(jti="jti_2"))


async def test_a_followed_client_event_refuses_cached_tokens_of_that_client(
    feed: RevocationFeed, verifier: Verifier, issuer: FakeIssuer, clock: ManualClock
) -> None:
    exchanged = issuer.token(sub="usr_ann", client_id="video-svc", act={"sub": "video-svc"})
    own = issuer.token(sub="video-svc", client_id="video-svc", sid=None)
    other = issuer.token(sub="usr_ann", client_id="photo-svc", act={"sub": "photo-svc"})
    for token in (exchanged, own, other):
        await verifier.verify(token)
    assert verifier.cache is not None
    assert len(verifier.cache) == 3
    issuer.revoke_client("video-svc")  # not_before: the next second
    await synced(feed, issuer)
    for token in (exchanged, own):
        with pytest.raises(RevokedTokenError):
            await verifier.verify(token)  # a cache hit, refused by the check on every hit
    assert (await verifier.verify(other)).client_id == "photo-svc"
    assert verifier.stats.rejections["revoked"] == 2
    assert feed.state().live[CLIENT] == 1
    assert feed.state().events[CLIENT] == 1
    clock.advance(1)  # issued at the cut-off or later: good (a re-enabled client's new tokens)
    fresh = issuer.token(sub="usr_ann", client_id="video-svc", act={"sub": "video-svc"})
    assert (await verifier.verify(fresh)).sub == "usr_ann"


async def test_a_revoked_key_is_dropped_while_the_jwks_still_lists_it(
    feed: RevocationFeed,
    verifier: Verifier,
    keyset: RemoteKeySet,
    issuer: FakeIssuer,
    clock: ManualClock,
) -> None:
    old = issuer.default_kid
    new = issuer.add_key()
    await keyset.refresh()
    cached = issuer.token(kid=old)
    await verifier.verify(cached)
    issuer.revoke_key(old, expires_at=clock() + 600)
    await synced(feed, issuer)
    assert verifier.cache is not None
    assert len(verifier.cache) == 0
    for token in (cached, issuer.token(kid=old)):
        with pytest.raises(UnknownKidError):
            await verifier.verify(token)
    await keyset.refresh()  # the JWKS still lists it: it stays out
    assert keyset.state().kids == (new,)
    await verifier.verify(issuer.token(kid=new))
    clock.advance(601)  # the revocation expired: a JWKS that lists the key brings it back
    await keyset.refresh()
    assert set(keyset.state().kids) == {old, new}


# -- expiry, snapshots, paging ---------------------------------------------------------------


async def test_entries_leave_when_they_expire(
    feed: RevocationFeed, verifier: Verifier, issuer: FakeIssuer, clock: ManualClock
) -> None:
    token = issuer.token(sid="ses_1", ttl=3600)
    issuer.revoke_session("ses_1", expires_at=clock() + 100)
    issuer.revoke_jti("jti_gone", expires_at=clock() - 1)  # expired already: never applied
    await synced(feed, issuer)
    assert feed.state().live == {"session": 1, "user": 0, "client": 0, "jti": 0, "key": 0}
    with pytest.raises(RevokedTokenError):
        await verifier.verify(token)
    clock.advance(100)
    assert feed.state().live["session"] == 0
    await verifier.verify(token)


async def test_a_snapshot_replaces_the_set(
    feed: RevocationFeed, verifier: Verifier, issuer: FakeIssuer
) -> None:
    issuer.revoke_session("ses_1")
    await synced(feed, issuer)
    issuer.feed_events.clear()  # the auth service's database restored from before that logout
    issuer.new_feed_epoch()
    issuer.revoke_session("ses_2")
    await synced(feed, issuer)
    await verifier.verify(issuer.token(sid="ses_1"))
    with pytest.raises(RevokedTokenError):
        await verifier.verify(issuer.token(sid="ses_2"))
    assert feed.state().live["session"] == 1


async def test_pages_are_followed_and_catching_up_waits_for_the_last(
    keyset: RemoteKeySet,
    denyset: DenySet,
    issuer: FakeIssuer,
    clock: ManualClock,
    sleeps: Sleeps,
) -> None:
    issuer.feed_page_size = 2
    for number in range(5):
        issuer.revoke_session(f"ses_{number}")
    async with follower(keyset, denyset, clock, sleeps) as feed:
        assert feed.caught_up
        assert issuer.feed_requests == 3  # 2 + 2 + 1, each at once
        assert [r.url.params["wait"] for r in issuer.requests if r.url.path == FEED] == ["0"] * 3
        assert len(denyset) == 5
        for number in range(5, 10):
            issuer.revoke_session(f"ses_{number}")
        await synced(feed, issuer)
        assert len(denyset) == 10


async def test_a_snapshot_over_pages_never_empties_the_live_set(
    feed: RevocationFeed,
    verifier: Verifier,
    issuer: FakeIssuer,
    clock: ManualClock,
    sleeps: Sleeps,
) -> None:
    issuer.revoke_session("ses_old")
    await synced(feed, issuer)
    await until(lambda: issuer.feed_waiting == 1)
    issuer.feed_page_size = 1
    issuer.feed_fail_with = 503  # the snapshot's second page will fail
    issuer.feed_events.clear()  # a restored database, without the old logout
    issuer.new_feed_epoch()  # wakes the long poll: its answer is the snapshot's first page
    issuer.revoke_session("ses_new_1")
    issuer.revoke_session("ses_new_2")
    await until(lambda: feed.state().errors.get("http_error", 0) == 1)
    for sid in ("ses_old", "ses_new_1"):  # mid-snapshot: the old entries stay, new ones join
        with pytest.raises(RevokedTokenError):
            await verifier.verify(issuer.token(sid=sid))
    issuer.feed_fail_with = None
    clock.advance(sleeps.delays[-1])
    await synced(feed, issuer)
    await verifier.verify(issuer.token(sid="ses_old"))  # the complete snapshot replaced the set
    with pytest.raises(RevokedTokenError):
        await verifier.verify(issuer.token(sid="ses_new_2"))


async def test_a_refused_cursor_starts_again_from_a_snapshot(
    feed: RevocationFeed, denyset: DenySet, issuer: FakeIssuer, clock: ManualClock, sleeps: Sleeps
) -> None:
    await until(lambda: issuer.feed_waiting == 1)
    issuer.feed_fail_with = 400  # as if the server no longer understood our cursor
    issuer.revoke_session("ses_1")  # answers the poll in flight; the next one gets the 400
    await until(lambda: feed.state().errors.get("bad_request", 0) == 1)
    issuer.feed_fail_with = None
    clock.advance(sleeps.delays[-1])
    await synced(feed, issuer)
    after_the_400 = [r for r in issuer.requests if r.url.path == FEED][-2]
    assert "cursor" not in after_the_400.url.params  # a snapshot asked for
    assert denyset.counts()["session"] == 1


# -- failures --------------------------------------------------------------------------------


async def test_failures_back_off_with_jitter_then_reconnect(
    keyset: RemoteKeySet,
    denyset: DenySet,
    issuer: FakeIssuer,
    clock: ManualClock,
    sleeps: Sleeps,
) -> None:
    issuer.feed_fail_with = httpx.ConnectError("refused")
    async with follower(keyset, denyset, clock, sleeps, random=1.0) as feed:
        assert not feed.caught_up
        for number, expected in enumerate((1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0), start=1):
            assert await sleeps.delay(number) == expected
            clock.advance(expected)
        issuer.feed_fail_with = None
        await until(lambda: feed.caught_up)
        state = feed.state()
        assert state.errors == {"network_error": 7}
        assert (state.last_outcome, state.ready) == ("ok", True)


async def test_the_jitter_spreads_retries_down_to_half(
    keyset: RemoteKeySet,
    denyset: DenySet,
    issuer: FakeIssuer,
    clock: ManualClock,
    sleeps: Sleeps,
) -> None:
    issuer.feed_fail_with = 502
    async with follower(keyset, denyset, clock, sleeps, random=0.0):
        await until(lambda: len(sleeps.delays) == 1)
        clock.advance(0.5)
        await until(lambda: len(sleeps.delays) == 2)
        assert sleeps.delays == [0.5, 1.0]


async def test_a_failing_feed_keeps_what_it_has(
    feed: RevocationFeed, verifier: Verifier, issuer: FakeIssuer, clock: ManualClock
) -> None:
    issuer.revoke_session("ses_1")
    await synced(feed, issuer)
    await until(lambda: issuer.feed_waiting == 1)
    issuer.feed_fail_with = 500
    issuer.revoke_jti("jti_other")  # answers the poll in flight; the next one fails
    await until(lambda: feed.state().errors.get("http_error", 0) == 1)
    clock.advance(120)
    with pytest.raises(RevokedTokenError):
        await verifier.verify(issuer.token(sid="ses_1"))
    await verifier.verify(issuer.token(sid="ses_2"))  # no max lag: serving goes on
    assert feed.state().ready


async def test_a_wrong_feed_token_is_counted_and_retried(
    keyset: RemoteKeySet,
    denyset: DenySet,
    issuer: FakeIssuer,
    clock: ManualClock,
    sleeps: Sleeps,
) -> None:
    issuer.feed_tokens = {"the-right-one"}
    async with follower(keyset, denyset, clock, sleeps) as feed:
        state = feed.state()
        assert (state.caught_up, state.ready, state.last_outcome) == (False, False, "unauthorized")
        issuer.feed_tokens = {"feed-token-mail"}
        await until(lambda: len(sleeps.delays) == 1)
        clock.advance(sleeps.delays[-1])
        await until(lambda: feed.caught_up)


async def test_an_answer_off_the_contract_is_not_applied(
    feed: RevocationFeed, denyset: DenySet, issuer: FakeIssuer, clock: ManualClock
) -> None:
    issuer.publish({"kind": "session", "expires_at": clock() + 60})  # no sid
    await until(lambda: feed.state().errors.get("invalid_answer", 0) == 1)
    assert feed.cursor != issuer.feed_cursor  # not moved past it: retried, never skipped
    assert len(denyset) == 0


async def test_events_of_an_unknown_kind_are_skipped(
    feed: RevocationFeed, denyset: DenySet, issuer: FakeIssuer, clock: ManualClock
) -> None:
    issuer.publish({"kind": "device", "device": "dev_1", "expires_at": clock() + 60})
    issuer.revoke_session("ses_1")
    await synced(feed, issuer)
    assert feed.state().events == {"unknown": 1, "session": 1}
    assert len(denyset) == 1


# -- long polls, discovery -------------------------------------------------------------------


async def test_caught_up_it_long_polls_from_its_cursor(
    feed: RevocationFeed, issuer: FakeIssuer
) -> None:
    await until(lambda: issuer.feed_requests == 2)
    second = [r for r in issuer.requests if r.url.path == FEED][1]
    assert second.url.params["wait"] == "25"
    assert second.url.params["cursor"] == issuer.feed_cursor
    issuer.revoke_session("ses_1")  # answered at once, not after 25 s
    await synced(feed, issuer)


async def test_an_issuer_without_a_feed_is_followed_without(
    clock: ManualClock, sleeps: Sleeps
) -> None:
    issuer = FakeIssuer(clock=clock)  # lists no feed
    async with (
        issuer.client() as its_client,
        RemoteKeySet(its_client, issuer=issuer.issuer, clock=clock, sleep=clock.sleep) as keyset,
    ):
        denyset = DenySet()
        async with follower(keyset, denyset, clock, sleeps, max_lag=60) as feed:
            state = feed.state()
            assert (state.status, state.ready, state.fail_closed) == (FEED_NOT_LISTED, True, False)
            assert issuer.feed_requests == 0
            issuer.feed_listed = True  # the auth service upgraded: found at the next look
            await until(lambda: len(sleeps.delays) == 1)
            assert sleeps.delays == [300]
            clock.advance(300)
            await until(lambda: feed.caught_up)
            assert issuer.count(DISCOVERY) == 2


async def test_a_feed_that_moved_is_discovered_again(
    feed: RevocationFeed, issuer: FakeIssuer, clock: ManualClock, sleeps: Sleeps
) -> None:
    issuer.feed_url = issuer.issuer + "/v2/revocations"  # the old path now answers 404
    issuer.revoke_session("ses_1")  # wakes the poll in flight; the next one is a 404
    await until(lambda: feed.state().errors.get("not_found", 0) == 1)
    clock.advance(sleeps.delays[-1])
    await until(lambda: feed.state().endpoint == issuer.feed_url)
    issuer.revoke_session("ses_2")
    await synced(feed, issuer)
    assert feed.state().live["session"] == 2


async def test_expired_entries_are_pruned_as_the_follower_goes(
    feed: RevocationFeed, denyset: DenySet, issuer: FakeIssuer, clock: ManualClock
) -> None:
    for number in range(50):
        issuer.revoke_session(f"ses_{number}", expires_at=clock() + 10 + number)
    await synced(feed, issuer)
    assert len(denyset) == 50
    clock.advance(40)
    issuer.revoke_session("ses_late")
    await synced(feed, issuer)
    assert len(denyset) == 20  # 31..49 plus the late one: the follower pruned as it went
    assert len(denyset._expiry) == 20


async def test_no_usable_keys_is_still_the_key_sets_answer(
    feed: RevocationFeed, verifier: Verifier, issuer: FakeIssuer, clock: ManualClock
) -> None:
    """The deny-set answers only for accepted tokens: an outage stays a 503 of the keys."""
    issuer.fail_with = httpx.ConnectError("down")
    clock.advance(12 * 3600 + 1)
    with pytest.raises(KeysUnavailableError) as raised:
        await verifier.verify(issuer.token(ttl=24 * 3600))
    assert raised.value.reason == "no_usable_keys"


def test_a_revocation_is_live_for_the_token_lifetime_plus_leeway_by_default(
    clock: ManualClock,
) -> None:
    issuer = FakeIssuer(clock=clock, feed=True)
    issuer.revoke_session("ses_1")
    assert issuer.feed_events[0]["expires_at"] == int(clock()) + REVOCATION_TTL
    assert Revocation("session", "ses_1", 1.0).not_before == 0.0

"""The ``client`` revocation: a registered client disabled or removed at the auth service. Every
token whose ``client_id`` claim is that client and whose ``iat`` is before ``not_before`` is
refused: the client's own service tokens, and the tokens it got by token exchange for users (their
``sub`` is the user's, so a ``user`` event for the client's id would miss them). Checked in the
deny-set alone, parsed from the feed, and through the follower and a verifier with a cache."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import orjson
import pytest

from gatepass import (
    AccessPrincipal,
    DenySet,
    FeedConfig,
    RemoteKeySet,
    Revocation,
    RevocationFeed,
    RevokedTokenError,
    TokenCache,
    Verifier,
)
from gatepass.core.feed import parse_answer
from gatepass.core.fetch import FetchFailed
from gatepass.core.revocations import CLIENT, USER
from gatepass.testing import FakeIssuer, ManualClock

NOW = 1_700_000_000.0
LATER = NOW + 360


def principal(
    *,
    sub: str = "usr_ann",
    client_id: str | None = "mail-svc",
    sid: str | None = "ses_1",
    iat: float = NOW - 1,
) -> AccessPrincipal:
    return AccessPrincipal(
        sub, frozenset(), ("video",), iat + 300, iat, sid, "jti_1", client_id, {}
    )


def refused(deny: DenySet, token: AccessPrincipal, now: float = NOW) -> bool:
    try:
        deny.check(token, "k0", now)
    except RevokedTokenError:
        return True
    return False


# -- the deny-set ----------------------------------------------------------------------------


def test_a_client_refuses_its_tokens_issued_before_not_before_whatever_their_sub() -> None:
    deny = DenySet()
    assert deny.add(Revocation(CLIENT, "mail-svc", LATER, not_before=NOW), NOW)
    assert refused(deny, principal())  # exchanged for a user: sub is the user's
    assert refused(deny, principal(sub="mail-svc", sid=None))  # the client's own token
    assert not refused(deny, principal(iat=NOW))  # issued at the cut-off: good
    assert not refused(deny, principal(client_id="video-svc"))
    assert not refused(deny, principal(client_id=None))
    # A client event is no user event: the client's id as a sub is not what it names.
    assert not refused(deny, principal(sub="mail-svc", client_id="video-svc"))


def test_a_user_event_for_the_clients_id_misses_what_it_exchanged() -> None:
    """Why the kind exists: the old ``user`` event refuses the client's own tokens only."""
    deny = DenySet()
    deny.add(Revocation(USER, "mail-svc", LATER, not_before=NOW), NOW)
    assert refused(deny, principal(sub="mail-svc", sid=None))
    assert not refused(deny, principal())


def test_a_later_client_event_keeps_the_latest_not_before_and_expiry() -> None:
    deny = DenySet()
    deny.add(Revocation(CLIENT, "mail-svc", LATER, not_before=NOW + 10), NOW)
    assert not deny.add(Revocation(CLIENT, "mail-svc", LATER, not_before=NOW), NOW)  # no-op
    assert refused(deny, principal(iat=NOW + 5))
    assert deny.add(Revocation(CLIENT, "mail-svc", LATER + 100, not_before=NOW), NOW)
    assert refused(deny, principal(iat=NOW + 5), now=LATER + 50)  # the later expiry, same cut
    assert not refused(deny, principal(iat=NOW + 10), now=LATER + 50)


def test_a_client_entry_expires_is_pruned_counted_and_replaced_like_the_others() -> None:
    deny = DenySet()
    deny.add(Revocation(CLIENT, "mail-svc", NOW + 10, not_before=NOW), NOW)
    assert deny.counts()[CLIENT] == 1
    assert len(deny) == 1
    assert not refused(deny, principal(), now=NOW + 10)  # expired, pruned or not
    assert deny.prune(NOW + 10) == 1
    assert deny.counts()[CLIENT] == 0
    snapshot = DenySet()
    snapshot.add(Revocation(CLIENT, "video-svc", LATER, not_before=NOW), NOW)
    deny.replace_with(snapshot)
    assert refused(deny, principal(client_id="video-svc"))


# -- the feed's answers ----------------------------------------------------------------------


def answer(*events: dict[str, object]) -> bytes:
    return orjson.dumps({"cursor": "ep:3", "snapshot": False, "more": False, "events": events})


def test_a_client_event_is_parsed() -> None:
    event = {"id": 1, "kind": "client", "client_id": "mail-svc", "not_before": 1, "expires_at": 9}
    assert parse_answer(answer(event)).events == (Revocation(CLIENT, "mail-svc", 9, 1),)


@pytest.mark.parametrize(
    "event",
    [
        {"kind": "client", "client_id": "mail-svc", "expires_at": 9},  # no not_before
        {"kind": "client", "sub": "mail-svc", "not_before": 1, "expires_at": 9},
        {"kind": "client", "client_id": "", "not_before": 1, "expires_at": 9},
        {"kind": "client", "client_id": "mail-svc", "not_before": "1", "expires_at": 9},
    ],
)
def test_a_client_event_off_the_contract_fails_the_answer(event: dict[str, object]) -> None:
    with pytest.raises(FetchFailed) as failed:
        parse_answer(answer(event))
    assert failed.value.outcome == "invalid_answer"


# -- followed, and checked by a verifier with a cache ----------------------------------------


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Let the follower run until ``condition`` holds (it needs milliseconds; 10 s is a hang)."""
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(0.001)


@pytest.fixture
def issuer(clock: ManualClock) -> FakeIssuer:
    return FakeIssuer(clock=clock, feed=True)


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


@pytest.fixture
async def feed(
    keyset: RemoteKeySet, denyset: DenySet, verifier: Verifier, clock: ManualClock
) -> AsyncIterator[RevocationFeed]:
    following = RevocationFeed(
        keyset,
        denyset,
        token="feed-token-mail",
        config=FeedConfig(),
        cache=verifier.cache,
        clock=clock,
        sleep=clock.sleep,
        random=lambda: 0.5,
    )
    async with following:
        yield following


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
    await until(lambda: feed.cursor == issuer.feed_cursor)
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

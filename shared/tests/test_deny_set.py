"""The deny-set alone: which tokens each kind refuses, expiry, pruning, snapshot replacement, the
fail-closed deadline, and the feed's answers parsed strictly."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from gatepass import (
    AccessPrincipal,
    DenySet,
    Revocation,
    RevocationsUnavailableError,
    RevokedTokenError,
)
from gatepass.core.feed import FeedConfig, parse_answer
from gatepass.core.fetch import FetchFailed
from gatepass.core.revocations import JTI, KEY, SESSION, USER

NOW = 1_700_000_000.0
LATER = NOW + 360


def principal(
    sub: str = "usr_ann", sid: str | None = "ses_1", jti: str | None = "jti_1", iat: float = NOW
) -> AccessPrincipal:
    return AccessPrincipal(sub, frozenset(), ("mail",), iat + 300, iat, sid, jti, None, {})


def refused(deny: DenySet, token: AccessPrincipal, kid: str = "k0", now: float = NOW) -> bool:
    try:
        deny.check(token, kid, now)
    except RevokedTokenError:
        return True
    return False


def test_an_empty_set_refuses_nothing() -> None:
    assert not refused(DenySet(), principal())
    assert not refused(DenySet(), principal(sid=None, jti=None))


def test_a_session_refuses_its_tokens_only() -> None:
    deny = DenySet()
    deny.add(Revocation(SESSION, "ses_1", LATER), NOW)
    assert refused(deny, principal(sid="ses_1"))
    assert not refused(deny, principal(sid="ses_2"))
    assert not refused(deny, principal(sid=None))


def test_a_user_refuses_tokens_issued_before_not_before() -> None:
    deny = DenySet()
    deny.add(Revocation(USER, "usr_ann", LATER, not_before=NOW), NOW)
    assert refused(deny, principal(iat=NOW - 1))
    assert not refused(deny, principal(iat=NOW))  # issued after the change: good
    assert not refused(deny, principal(sub="usr_bob", iat=NOW - 1))


def test_a_later_user_event_keeps_the_latest_not_before() -> None:
    deny = DenySet()
    deny.add(Revocation(USER, "usr_ann", LATER, not_before=NOW + 10), NOW)
    assert not deny.add(Revocation(USER, "usr_ann", LATER, not_before=NOW), NOW)  # older: no-op
    assert refused(deny, principal(iat=NOW + 5))
    deny.add(Revocation(USER, "usr_ann", LATER, not_before=NOW + 20), NOW)
    assert refused(deny, principal(iat=NOW + 15))


def test_a_jti_refuses_one_token() -> None:
    deny = DenySet()
    deny.add(Revocation(JTI, "jti_1", LATER), NOW)
    assert refused(deny, principal(jti="jti_1"))
    assert not refused(deny, principal(jti="jti_2"))
    assert not refused(deny, principal(jti=None))


def test_a_key_refuses_every_token_it_signed() -> None:
    deny = DenySet()
    deny.add(Revocation(KEY, "k1", LATER), NOW)
    assert refused(deny, principal(), kid="k1")
    assert not refused(deny, principal(), kid="k2")


def test_an_entry_refuses_nothing_once_expired_even_before_pruning() -> None:
    deny = DenySet()
    deny.add(Revocation(SESSION, "ses_1", NOW + 10), NOW)
    assert refused(deny, principal(), now=NOW + 9.9)
    assert not refused(deny, principal(), now=NOW + 10)
    assert len(deny) == 1
    assert deny.prune(NOW + 10) == 1
    assert len(deny) == 0


def test_an_expired_event_is_not_added() -> None:
    deny = DenySet()
    assert not deny.add(Revocation(JTI, "jti_1", NOW), NOW)
    assert len(deny) == 0


def test_an_extended_entry_outlives_its_first_expiry() -> None:
    deny = DenySet()
    deny.add(Revocation(SESSION, "ses_1", NOW + 10), NOW)
    deny.add(Revocation(SESSION, "ses_1", NOW + 100), NOW)
    assert deny.prune(NOW + 50) == 0
    assert refused(deny, principal(), now=NOW + 50)
    assert deny.prune(NOW + 100) == 1


def token_for(event: Revocation) -> tuple[AccessPrincipal, str]:
    """A token that ``event`` refuses, and its kid."""
    if event.kind == SESSION:
        return principal(sid=event.value), "k0"
    if event.kind == USER:
        return principal(sub=event.value, iat=event.not_before - 1), "k0"
    if event.kind == JTI:
        return principal(jti=event.value), "k0"
    return principal(), event.value


def test_a_hundred_thousand_revocations_over_time_leave_only_the_live_ones() -> None:
    """One event a second for 100,000 seconds, each live for an hour, pruned as time goes."""
    deny, rng = DenySet(), random.Random(7)
    kinds = (SESSION, USER, JTI, KEY)
    events = []
    for second in range(100_000):
        now = NOW + second
        kind = kinds[rng.randrange(4)]
        events.append(Revocation(kind, f"{kind}-{second}", now + 3600, not_before=now))
        deny.add(events[-1], now)
        if second % 60 == 0:
            deny.prune(now)
    end = NOW + 99_999
    deny.prune(end)
    assert len(deny) == 3600  # the last hour's, no more
    assert sum(deny.counts().values()) == 3600
    assert len(deny._expiry) == 3600  # the heap holds the live ones only
    for event in (events[-1], events[-3600]):
        assert refused(deny, *token_for(event), now=end)
    assert not refused(deny, *token_for(events[-3601]), now=end)


def test_snapshot_replacement_takes_the_other_set_whole() -> None:
    deny, snapshot = DenySet(), DenySet()
    deny.add(Revocation(SESSION, "ses_1", LATER), NOW)
    snapshot.add(Revocation(SESSION, "ses_2", LATER), NOW)
    deny.trusted_until = NOW + 60
    deny.replace_with(snapshot)
    assert not refused(deny, principal(sid="ses_1"))
    assert refused(deny, principal(sid="ses_2"))
    assert deny.trusted_until == NOW + 60  # the follower's deadline stays


def test_past_the_trusted_deadline_every_token_is_unavailable() -> None:
    deny = DenySet()
    deny.trusted_until, deny.retry_after = NOW + 30, 4.0
    deny.check(principal(), "k1", NOW + 30)
    with pytest.raises(RevocationsUnavailableError) as raised:
        deny.check(principal(), "k1", NOW + 30.5)
    assert raised.value.retry_after == 4.0
    assert raised.value.reason == "revocations_stale"


# -- the answers ------------------------------------------------------------------------------


def answer(**fields: object) -> bytes:
    body = {"cursor": "ep:3", "snapshot": False, "more": False, "events": []} | fields
    return orjson.dumps(body)


def test_an_answer_is_parsed_into_revocations() -> None:
    events = [
        {"id": 1, "kind": "session", "sid": "ses_1", "expires_at": 1764130000},
        {"id": 2, "kind": "user", "sub": "usr_1", "not_before": 1764129701, "expires_at": 2e9},
        {"id": 3, "kind": "jti", "jti": "j", "expires_at": 1764130000},
        {"id": 4, "kind": "key", "kid": "k", "expires_at": 1764130000},
        {"id": 5, "kind": "device", "device": "d", "expires_at": 1764130000},
    ]
    parsed = parse_answer(answer(snapshot=True, more=True, events=events))
    assert (parsed.cursor, parsed.snapshot, parsed.more, parsed.skipped) == ("ep:3", True, True, 1)
    assert parsed.events == (
        Revocation(SESSION, "ses_1", 1764130000),
        Revocation(USER, "usr_1", 2e9, 1764129701),
        Revocation(JTI, "j", 1764130000),
        Revocation(KEY, "k", 1764130000),
    )


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        answer(cursor=""),
        answer(cursor=5),
        answer(more="false"),
        answer(events={}),
        answer(events=[{"kind": "session", "expires_at": 1}]),
        answer(events=[{"kind": "session", "sid": "s", "expires_at": "soon"}]),
        answer(events=[{"kind": "session", "sid": "s", "expires_at": True}]),
        answer(events=[{"kind": "user", "sub": "u", "expires_at": 1}]),
        answer(events=[{"kind": "jti", "jti": "x" * 2000, "expires_at": 1}]),
        answer(events=[{"sid": "s", "expires_at": 1}]),
        answer(events=["session"]),
    ],
)
def test_an_answer_off_the_contract_fails_whole(body: bytes) -> None:
    with pytest.raises(FetchFailed) as failed:
        parse_answer(body)
    assert failed.value.outcome == "invalid_answer"


@pytest.mark.parametrize(
    "values",
    [{"wait": 31}, {"wait": -1}, {"max_lag": 25}, {"retry_min": 0}, {"retry_max": 0.5}],
)
def test_a_config_that_cannot_work_is_refused(values: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must"):
        FeedConfig(**values)

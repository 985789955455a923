"""The ``client`` revocation: a registered client disabled or removed at the auth service. Every
token whose ``client_id`` claim is that client and whose ``iat`` is before ``not_before`` is
refused: the client's own service tokens, and the tokens it got by token exchange for users (their
``sub`` is the user's, so a ``user`` event for the client's id would miss them). Checked in the
deny-set alone and parsed from the feed; followed, and checked by a verifier with a cache, in
test_revocation_feed.py beside the other kinds."""

from __future__ import annotations

import orjson
import pytest

from gatepass import (
    AccessPrincipal,
    DenySet,
    Revocation,
    RevokedTokenError,
)
from gatepass.core.feed import parse_answer
from gatepass.core.fetch import FetchFailed
from gatepass.core.revocations import CLIENT, USER

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

"""The rotation rules as plain functions of key rows and a time: no database, no manager.

Timing: a new key is published one lead (11 min) before it signs, a key signs for an hour, and a
retired key's tokens live 6 min past its last signature.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from auth_service.keys.rotation import (
    ACTIVE,
    NEXT,
    RETIRED,
    REVOKED,
    NewKeyPlan,
    Plan,
    Schedule,
    brought_forward,
    plan,
)
from auth_service.models import SigningKey

T0 = datetime(2030, 1, 1, tzinfo=UTC)
LEAD = timedelta(minutes=11)
INTERVAL = timedelta(hours=1)
SCHEDULE = Schedule(alg="ES256", lead=LEAD, interval=INTERVAL, expiry=timedelta(minutes=6))


def key(kid: str, state: str, *, alg: str = "ES256", **times: datetime | None) -> SigningKey:
    """A row as the manager reads it, never stored: the rules only look at its fields."""
    fields: dict[str, datetime | None] = {
        "created_at": T0,
        "promote_after": None,
        "activated_at": T0 if state == ACTIVE else None,
        "retired_at": None,
        "revoked_at": None,
        **times,
    }
    return SigningKey(kid=kid, alg=alg, state=state, public_jwk={}, private_key_enc=b"", **fields)


def test_no_key_at_all_makes_one_that_signs_at_once() -> None:
    assert plan([], T0, SCHEDULE) == Plan(create=NewKeyPlan("ES256", None))


def test_the_successor_is_published_one_lead_before_the_interval_ends() -> None:
    publish_at = T0 + INTERVAL - LEAD
    assert plan([key("a", ACTIVE)], publish_at - timedelta(seconds=1), SCHEDULE).is_empty()
    successor = NewKeyPlan("ES256", T0 + INTERVAL)
    assert plan([key("a", ACTIVE)], publish_at, SCHEDULE) == Plan(create=successor)


def test_a_due_next_key_is_promoted_and_the_active_one_retired() -> None:
    rows = [key("a", ACTIVE), key("b", NEXT, promote_after=T0 + INTERVAL)]
    assert plan(rows, T0 + INTERVAL - timedelta(seconds=1), SCHEDULE).is_empty()
    assert plan(rows, T0 + INTERVAL, SCHEDULE) == Plan(retire=("a",), promote="b")


def test_a_changed_algorithm_publishes_a_successor_at_once() -> None:
    rows = [key("a", ACTIVE, alg="RS256")]
    assert plan(rows, T0, SCHEDULE) == Plan(create=NewKeyPlan("ES256", T0 + LEAD))


def test_retired_and_revoked_keys_go_once_their_tokens_expired() -> None:
    rows = [
        key("a", ACTIVE),
        key("old", RETIRED, retired_at=T0),
        key("bad", REVOKED, revoked_at=T0 + timedelta(minutes=1)),
    ]
    assert plan(rows, T0 + timedelta(minutes=6, seconds=1), SCHEDULE).delete == ("old",)


def test_a_forced_rotation_never_delays_a_due_key_nor_skips_the_lead() -> None:
    fresh = key("b", NEXT, promote_after=T0 + INTERVAL)
    assert brought_forward(fresh, T0, LEAD) == T0 + LEAD
    due = key("c", NEXT, promote_after=T0 + timedelta(minutes=1))
    assert brought_forward(due, T0 + timedelta(minutes=5), LEAD) == T0 + timedelta(minutes=1)

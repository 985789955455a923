"""The rotation rules: what should happen to the signing keys at a given time, decided from the key
rows alone.

A key is ``next`` (published, not signing) -> ``active`` (signing) -> ``retired`` (published until
every token it signed has expired) -> deleted; or ``revoked`` (out of the JWKS at once, deleted
once its tokens have expired). Each purpose (``access`` tokens, OpenID Connect ``id`` tokens) runs
this life cycle on its own keys, with its own algorithm: the rules are applied to the rows of one
purpose at a time (:func:`of_purpose`). A new key is published at least one ``lead`` (one JWKS cache
lifetime plus a margin) before it signs, so every edge already holds it when the first token
arrives.

Everything here is a plain function of rows and a time: :func:`plan` says what the scheduled job
does at time T, the transitions (:func:`activate`, :func:`retire`, :func:`revoke`) change a row in
memory. No database is involved; :class:`auth_service.keys.manager.KeyManager` reads the rows
under its lock, asks, and writes the answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from auth_service.config import Settings
from auth_service.keys.sealing import NewKey
from auth_service.models import SigningKey

ACCESS: Final = "access"
ID: Final = "id"
PURPOSES: Final = (ACCESS, ID)

NEXT: Final = "next"
ACTIVE: Final = "active"
RETIRED: Final = "retired"
REVOKED: Final = "revoked"
PUBLISHED_STATES: Final = (ACTIVE, NEXT, RETIRED)

# Seconds a key's tokens may outlive its last signature beyond the access-token TTL: clock skew at
# the edges, plus the few seconds another replica may sign from a stale snapshot.
EXPIRY_LEEWAY: Final = 60


@dataclass(frozen=True)
class Schedule:
    """The timing rules of one purpose's keys, read from the settings once."""

    alg: str
    lead: timedelta  # a new key is published at least this long before it signs
    interval: timedelta  # a key signs for about this long
    expiry: timedelta  # how long tokens outlive the key's last signature

    @classmethod
    def from_settings(cls, settings: Settings, purpose: str = ACCESS) -> Schedule:
        """Access keys sign with ``signing_alg``, ID-token keys with ``id_token_signing_alg``;
        each kind of token outlives its key's last signature by its own lifetime."""
        if purpose not in PURPOSES:
            raise ValueError(f"unknown key purpose {purpose!r}")
        alg, ttl = (
            (settings.signing_alg, settings.access_token_ttl)
            if purpose == ACCESS
            else (settings.id_token_signing_alg, settings.id_token_ttl)
        )
        return cls(
            alg=alg,
            lead=timedelta(seconds=settings.key_publish_lead),
            interval=timedelta(seconds=settings.key_rotation_interval),
            expiry=timedelta(seconds=ttl + EXPIRY_LEEWAY),
        )


@dataclass(frozen=True)
class NewKeyPlan:
    alg: str
    promote_after: datetime | None  # None: active at once (there is nothing else to sign with)


@dataclass(frozen=True)
class Plan:
    """What the scheduled job should do: delete, retire, promote (kids), and create a key."""

    delete: tuple[str, ...] = ()
    retire: tuple[str, ...] = ()
    promote: str | None = None
    create: NewKeyPlan | None = None

    def is_empty(self) -> bool:
        return not (self.delete or self.retire or self.promote or self.create)


# --- reading the rows ----------------------------------------------------------------------------


def purpose_of(row: SigningKey) -> str:
    """A row not stored yet has no purpose until the insert applies the column's default."""
    return row.purpose or ACCESS


def of_purpose(rows: Iterable[SigningKey], purpose: str) -> list[SigningKey]:
    """The rows one life cycle runs on: the rules never mix two purposes' keys."""
    return [row for row in rows if purpose_of(row) == purpose]


def activated(row: SigningKey) -> datetime:
    return row.activated_at or row.created_at


def actives(rows: Iterable[SigningKey]) -> list[SigningKey]:
    """Active keys, the one that signs (latest activation) first."""
    return sorted((r for r in rows if r.state == ACTIVE), key=activated, reverse=True)


def nexts(rows: Iterable[SigningKey]) -> list[SigningKey]:
    """Next keys, the first to promote first."""
    return sorted(
        (r for r in rows if r.state == NEXT), key=lambda r: (r.promote_after or r.created_at, r.kid)
    )


def expired(row: SigningKey, now: datetime, expiry: timedelta) -> bool:
    """A retired or revoked key can go once every token it signed has expired."""
    since = {RETIRED: row.retired_at, REVOKED: row.revoked_at}.get(row.state)
    return since is not None and since + expiry < now


# --- the decisions -------------------------------------------------------------------------------


def plan(rows: Sequence[SigningKey], now: datetime, schedule: Schedule) -> Plan:
    """The scheduled job at ``now``: remove expired keys, promote a due next key, publish a
    successor in time. Without an active key, a published key is promoted at once, else a new key
    signs at once: better than not signing.
    """
    delete = tuple(row.kid for row in rows if expired(row, now, schedule.expiry))
    signing, waiting = actives(rows), nexts(rows)
    active = signing[0] if signing else None
    stale = tuple(row.kid for row in signing[1:])  # only after a crash between two writes
    first_next = waiting[0] if waiting else None
    if first_next is not None and (
        active is None or first_next.promote_after is None or first_next.promote_after <= now
    ):
        stale += (active.kid,) if active is not None else ()
        create = next_key_plan(schedule, now, first_next.alg, now, has_next=len(waiting) > 1)
        return Plan(delete, stale, first_next.kid, create)
    if active is None:
        return Plan(delete, stale, None, NewKeyPlan(schedule.alg, None))
    create = next_key_plan(schedule, now, active.alg, activated(active), has_next=bool(waiting))
    return Plan(delete, stale, None, create)


def next_key_plan(
    schedule: Schedule, now: datetime, alg: str, activated_at: datetime, *, has_next: bool
) -> NewKeyPlan | None:
    """Publish the successor one lead before the active key's interval ends, or at once (to sign
    one lead later) when the operator changed the algorithm.
    """
    if has_next:
        return None
    if now - activated_at >= schedule.interval - schedule.lead:
        promote_after = max(activated_at + schedule.interval, now + schedule.lead)
        return NewKeyPlan(schedule.alg, promote_after)
    if alg != schedule.alg:
        return NewKeyPlan(schedule.alg, now + schedule.lead)
    return None


def brought_forward(next_key: SigningKey, now: datetime, lead: timedelta) -> datetime:
    """When a forced rotation lets ``next_key`` sign: one lead after it was published (so every
    edge holds it), not before now, and never later than it was already due.
    """
    earliest = max(next_key.created_at + lead, now)
    if next_key.promote_after is not None and next_key.promote_after < earliest:
        return next_key.promote_after  # already due: never delay it
    return earliest


# --- the transitions -----------------------------------------------------------------------------


def new_row(key: NewKey, plan: NewKeyPlan, now: datetime, purpose: str = ACCESS) -> SigningKey:
    """The row of a new key: ``next`` until ``plan.promote_after``, or ``active`` at once."""
    return SigningKey(
        kid=key.kid,
        alg=key.alg,
        purpose=purpose,
        state=ACTIVE if plan.promote_after is None else NEXT,
        public_jwk=key.jwk,
        private_key_enc=key.sealed,
        created_at=now,
        promote_after=plan.promote_after,
        activated_at=now if plan.promote_after is None else None,
        retired_at=None,
        revoked_at=None,
    )


def activate(row: SigningKey, now: datetime) -> None:
    row.state = ACTIVE
    row.activated_at = now
    row.promote_after = None


def retire(row: SigningKey, now: datetime) -> None:
    row.state = RETIRED
    row.retired_at = now


def revoke(row: SigningKey, now: datetime) -> str:
    """Take the key out of the JWKS at once; the state it had is returned."""
    previous = row.state
    row.state = REVOKED
    row.revoked_at = now
    return previous


def describe_new(row: SigningKey) -> str:
    """The log line of a key just created."""
    what = f"key {row.kid} ({purpose_of(row)}, {row.alg}"
    if row.state == ACTIVE:
        return f"created active {what})"
    when = row.promote_after.isoformat() if row.promote_after else "?"
    return f"created next {what}, signs from {when})"

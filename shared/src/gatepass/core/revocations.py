"""The deny-set: what the revocation feed revoked, checked on every accepted token.

Five tables, one per kind of event on the feed (the wire contract is the auth service's
``/revocations``, followed by :mod:`gatepass.core.feed`):

- ``session``: tokens whose ``sid`` is the revoked session (logout, device sign-out);
- ``user``: tokens of ``sub`` issued before ``not_before`` (disable, role or password change,
  logout everywhere); a later event for the same ``sub`` keeps the latest ``not_before``;
- ``client``: tokens whose ``client_id`` claim is the client's, issued before ``not_before`` (a
  registered client disabled or removed: its own service tokens and those it got by token
  exchange for users); the latest ``not_before`` is kept, as for ``user``;
- ``jti``: one token (RFC 7009 revocation, refresh-token reuse);
- ``key``: every token signed with ``kid`` (the key set also drops the key).

Each entry lives until its ``expires_at``, when no token it can refuse is alive any more. A check
is at most five dict lookups, whatever the number of entries: it runs on every request, verified
-token cache hits included. Expired entries leave through a heap ordered by expiry, so pruning
costs only the entries that leave, and 100,000 revocations spread over hours keep only the live
ones in memory.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from gatepass.core.errors import RevocationsUnavailableError, RevokedTokenError
from gatepass.core.principal import AccessPrincipal

SESSION = "session"
USER = "user"
CLIENT = "client"
JTI = "jti"
KEY = "key"
KINDS = (SESSION, USER, CLIENT, JTI, KEY)
CUT_OFF_KINDS = frozenset({USER, CLIENT})
"""The kinds that refuse tokens issued before a time (``not_before``), not one value outright."""


@dataclass(frozen=True, slots=True)
class Revocation:
    """One event of the feed: ``value`` is the ``sid``, ``sub``, ``client_id``, ``jti`` or ``kid``
    it names.

    Times are epoch seconds; ``not_before`` only means something for a ``user`` or ``client``
    event.
    """

    kind: str
    value: str
    expires_at: float
    not_before: float = 0.0


class RevocationCheck(Protocol):
    """What the verifier asks on every accepted token: raise a ``GatepassError`` to refuse it."""

    def check(self, principal: AccessPrincipal, kid: str, now: float) -> None: ...


class DenySet:
    """The live revocations, by kind. Not thread-safe: one event loop reads and writes it.

    ``trusted_until`` is set by whoever keeps the set current (the feed follower): past it, every
    check answers :class:`RevocationsUnavailableError` (a 503), with ``retry_after``.
    """

    def __init__(self) -> None:
        self._sessions: dict[str, float] = {}
        self._users: dict[str, tuple[float, float]] = {}  # sub -> (not_before, expires_at)
        self._clients: dict[str, tuple[float, float]] = {}  # client_id -> (not_before, expires_at)
        self._jtis: dict[str, float] = {}
        self._kids: dict[str, float] = {}
        self._expiry: list[tuple[float, str, str]] = []  # a heap of (expires_at, kind, value)
        self.trusted_until = math.inf
        self.retry_after = 5.0

    # -- the request path -------------------------------------------------------------------

    def check(self, principal: AccessPrincipal, kid: str, now: float) -> None:
        """Refuse a revoked token. An entry past its expiry refuses nothing, pruned or not."""
        if now > self.trusted_until:
            raise RevocationsUnavailableError(retry_after=self.retry_after)
        sid = principal.sid
        if sid is not None:
            until = self._sessions.get(sid)
            if until is not None and now < until:
                raise RevokedTokenError
        user = self._users.get(principal.sub)
        if user is not None and principal.iat < user[0] and now < user[1]:
            raise RevokedTokenError
        client_id = principal.client_id
        if client_id is not None:
            client = self._clients.get(client_id)
            if client is not None and principal.iat < client[0] and now < client[1]:
                raise RevokedTokenError
        jti = principal.jti
        if jti is not None:
            until = self._jtis.get(jti)
            if until is not None and now < until:
                raise RevokedTokenError
        until = self._kids.get(kid)
        if until is not None and now < until:
            raise RevokedTokenError

    # -- the feed's side --------------------------------------------------------------------

    def add(self, event: Revocation, now: float) -> bool:
        """Add one revocation (an expired one is dropped); True if it changed the set."""
        expires_at = event.expires_at
        if expires_at <= now:
            return False
        if event.kind in CUT_OFF_KINDS:
            cut_offs = self._cut_off_table(event.kind)
            old = cut_offs.get(event.value)
            not_before = event.not_before
            if old is not None:
                if old[0] >= not_before and old[1] >= expires_at:
                    return False
                not_before, expires_at = max(old[0], not_before), max(old[1], expires_at)
            cut_offs[event.value] = (not_before, expires_at)
        else:
            table = self._scalar_table(event.kind)
            old_expiry = table.get(event.value)
            if old_expiry is not None and old_expiry >= expires_at:
                return False
            table[event.value] = expires_at
        heapq.heappush(self._expiry, (expires_at, event.kind, event.value))
        return True

    def extend(self, events: Iterable[Revocation], now: float) -> int:
        """Add every event; returns how many changed the set."""
        return sum(self.add(event, now) for event in events)

    def prune(self, now: float) -> int:
        """Forget the entries that expired by ``now``; returns how many left. Costs only those."""
        heap, pruned = self._expiry, 0
        while heap and heap[0][0] <= now:
            _, kind, value = heapq.heappop(heap)
            pruned += self._drop_expired(kind, value, now)
        return pruned

    def _drop_expired(self, kind: str, value: str, now: float) -> int:
        """Drop one entry if it did expire: a later event may have extended it since."""
        if kind in CUT_OFF_KINDS:
            cut_offs = self._cut_off_table(kind)
            entry = cut_offs.get(value)
            if entry is None or entry[1] > now:
                return 0
            del cut_offs[value]
            return 1
        table = self._scalar_table(kind)
        expires_at = table.get(value)
        if expires_at is None or expires_at > now:
            return 0
        del table[value]
        return 1

    def replace_with(self, other: DenySet) -> None:
        """Take ``other``'s entries as ours (a snapshot of the feed replaces the set)."""
        self._sessions, self._users = other._sessions, other._users
        self._clients = other._clients
        self._jtis, self._kids = other._jtis, other._kids
        self._expiry = other._expiry

    # -- reading ----------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Entries by kind (expired ones count until pruned)."""
        return {
            SESSION: len(self._sessions),
            USER: len(self._users),
            CLIENT: len(self._clients),
            JTI: len(self._jtis),
            KEY: len(self._kids),
        }

    def __len__(self) -> int:
        return (
            len(self._sessions)
            + len(self._users)
            + len(self._clients)
            + len(self._jtis)
            + len(self._kids)
        )

    def _cut_off_table(self, kind: str) -> dict[str, tuple[float, float]]:
        """The table of a kind whose entries are a ``not_before`` and an expiry."""
        return self._users if kind == USER else self._clients

    def _scalar_table(self, kind: str) -> dict[str, float]:
        """The table of a kind whose entries are only an expiry (``session``, ``jti``, ``key``)."""
        if kind == SESSION:
            return self._sessions
        if kind == JTI:
            return self._jtis
        if kind == KEY:
            return self._kids
        raise ValueError(f"unknown revocation kind {kind!r}")

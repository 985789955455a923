"""A bounded cache of already-verified tokens, so a hot token skips the signature math.

Keyed by a BLAKE2b digest of the exact token bytes, not the token: a heap dump then holds no
usable bearer tokens (BLAKE2b is collision resistant and built into CPython).
An entry lives until the token's ``exp`` plus the leeway (exactly as long as a fresh verification
would accept it), at most ``max_entries`` are kept (least recently used go first), and entries can
be dropped by session, by subject, by the key that signed them or by token id.

What the index costs is paid on every cold verification, so only the frequent drops are indexed:
the revocation feed drops by session (logout) and by subject (user disabled, logout everywhere)
often, so each of those maps a value to the digests that carry it and a drop costs the number of
entries dropped. A key leaves once a month (rotation) and a single token id is revoked rarely, so
those two scan the cache instead of taxing every insert.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import NamedTuple

from gatepass.core.principal import AccessPrincipal


class Entry(NamedTuple):
    """One verified token: its principal, until when it may be used, and the key that signed it."""

    principal: AccessPrincipal
    valid_until: float
    kid: str


def token_digest(token: str | bytes) -> bytes:
    """The cache key, computed once per request. ``surrogatepass``: one-to-one for any string.

    A token as bytes is hashed as it is; an ASCII string has the same key as its bytes.
    """
    if isinstance(token, str):
        token = token.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(token).digest()


class TokenCache:
    """Verified tokens, least recently used first out."""

    def __init__(self, max_entries: int = 10_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, Entry] = OrderedDict()
        self._by_sid: dict[str, set[bytes]] = {}
        self._by_sub: dict[str, set[bytes]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: bytes, now: float) -> AccessPrincipal | None:
        """The principal of a cached, still valid token (by :func:`token_digest`), or ``None``."""
        entry = self.lookup(digest, now)
        return None if entry is None else entry.principal

    def lookup(self, digest: bytes, now: float) -> Entry | None:
        """Like :meth:`get`, but the whole entry: a hit is only as good as the key behind it,
        which the caller checks is still usable."""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if now >= entry.valid_until:
            self._remove(digest)
            return None
        self._entries.move_to_end(digest)
        return entry

    def put(self, digest: bytes, principal: AccessPrincipal, kid: str, valid_until: float) -> None:
        """Remember a token that was just verified, until ``valid_until`` (epoch seconds)."""
        if digest in self._entries:
            self._remove(digest)
        self._entries[digest] = Entry(principal, valid_until, kid)
        self._by_sub.setdefault(principal.sub, set()).add(digest)
        if principal.sid is not None:
            self._by_sid.setdefault(principal.sid, set()).add(digest)
        if len(self._entries) > self.max_entries:
            self._remove(next(iter(self._entries)))

    def drop_sid(self, sid: str) -> int:
        """Forget the tokens of one session (logout, session revoked); returns how many."""
        return self._drop_all(self._by_sid.get(sid, ()))

    def drop_sub(self, sub: str) -> int:
        """Forget every token of one subject (user disabled, roles changed, logout everywhere)."""
        return self._drop_all(self._by_sub.get(sub, ()))

    def drop_kids(self, kids: Iterable[str]) -> int:
        """Forget tokens signed by these keys (they left the key set). Scans: keys leave rarely."""
        gone = frozenset(kids)
        return self._drop_where(lambda entry: entry.kid in gone)

    def drop_jti(self, jti: str) -> int:
        """Forget one token by its id. Scans: single-token revocations are rare."""
        return self._drop_where(lambda entry: entry.principal.jti == jti)

    def clear(self) -> None:
        self._entries.clear()
        self._by_sid.clear()
        self._by_sub.clear()

    def _remove(self, digest: bytes) -> None:
        principal = self._entries.pop(digest).principal
        _discard(self._by_sub, principal.sub, digest)
        if principal.sid is not None:
            _discard(self._by_sid, principal.sid, digest)

    def _drop_all(self, digests: Iterable[bytes]) -> int:
        doomed = list(digests)
        for digest in doomed:
            self._remove(digest)
        return len(doomed)

    def _drop_where(self, doomed: Callable[[Entry], bool]) -> int:
        return self._drop_all([digest for digest, entry in self._entries.items() if doomed(entry)])


def _discard(index: dict[str, set[bytes]], value: str, digest: bytes) -> None:
    digests = index[value]
    digests.discard(digest)
    if not digests:
        del index[value]

"""A bounded cache of already-verified tokens, so a hot token skips the signature math.

Keyed by a BLAKE2b digest of the exact token bytes, not the token: a heap dump then holds no
usable bearer tokens. BLAKE2b rather than SHA-256: both are collision resistant, and on the hot
path (every request of a cached token) BLAKE2b, which CPython builds in, costs about 1.5 us where
OpenSSL's SHA-256 costs about 3 (a fetch through OpenSSL's provider machinery on every call), in a
hot path of about 8 us in all.
An entry lives until the token's ``exp`` plus the leeway (exactly as long as a fresh verification
would accept it), at most ``max_entries`` are kept (least recently used go first), and entries can
be dropped by session, by subject, by the key that signed them or by token id.

What the index costs is paid on every cold verification, so only the frequent drops are indexed:
the revocation feed drops by session (logout) and by subject (user disabled, logout everywhere)
often, so each of those maps a value to the digests that carry it and a drop costs the number of
entries dropped. A key leaves once a month (rotation) and a single token id is revoked rarely, so
those two scan the cache (a few milliseconds at 10,000 entries) instead of taxing every insert.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterable

from gatepass.core.principal import AccessPrincipal

# An entry is a plain tuple (cheaper to build than a NamedTuple): principal, valid until, kid.
Entry = tuple[AccessPrincipal, float, str]
KEY_HASH = hashlib.blake2b
"""The hash of the cache key (called directly on the verifier's hot path, one call less)."""


def token_digest(token: str | bytes) -> bytes:
    """The cache key, computed once per request. ``surrogatepass``: one-to-one for any string.

    A token as bytes is hashed as it is; an ASCII string has the same key as its bytes.
    """
    if isinstance(token, str):
        token = token.encode("utf-8", "surrogatepass")
    return KEY_HASH(token).digest()


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
        return None if entry is None else entry[0]

    def lookup(self, digest: bytes, now: float) -> Entry | None:
        """Like :meth:`get`, but the whole entry: principal, valid until, and the ``kid`` that
        signed the token. A hit is only as good as the key behind it, which the caller checks is
        still usable. (The verifier's per-request path: one dictionary lookup.)"""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if now >= entry[1]:
            self._remove(digest)
            return None
        self._entries.move_to_end(digest)
        return entry

    def put(self, digest: bytes, principal: AccessPrincipal, kid: str, valid_until: float) -> None:
        """Remember a token that was just verified, until ``valid_until`` (epoch seconds)."""
        if digest in self._entries:
            self._remove(digest)
        self._entries[digest] = (principal, valid_until, kid)
        _add(self._by_sub, principal.sub, digest)
        if principal.sid is not None:
            _add(self._by_sid, principal.sid, digest)
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
        return self._drop_where(lambda entry: entry[2] in gone)

    def drop_jti(self, jti: str) -> int:
        """Forget one token by its id. Scans: single-token revocations are rare."""
        return self._drop_where(lambda entry: entry[0].jti == jti)

    def clear(self) -> None:
        self._entries.clear()
        self._by_sid.clear()
        self._by_sub.clear()

    def _remove(self, digest: bytes) -> None:
        principal = self._entries.pop(digest)[0]
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


def _add(index: dict[str, set[bytes]], value: str, digest: bytes) -> None:
    digests = index.get(value)
    if digests is None:
        index[value] = {digest}
    else:
        digests.add(digest)


def _discard(index: dict[str, set[bytes]], value: str, digest: bytes) -> None:
    digests = index[value]
    digests.discard(digest)
    if not digests:
        del index[value]

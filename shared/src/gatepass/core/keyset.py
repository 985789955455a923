"""Key sets: where the verifier gets the key for a token's ``kid``.

:class:`RemoteKeySet` follows the issuer's JWKS and is built to survive both an issuer outage and
a hostile client:

- refreshed in the background ahead of expiry, with jitter, honouring ``Cache-Control`` within
  bounds and revalidating with ``ETag`` (a 304 keeps the keys and restarts their lifetime);
- an unknown ``kid`` costs the issuer at most one fetch per cooldown: a format check first, then a
  negative cache, then one fetch in flight that every waiter shares, and a cooldown that counts
  failed fetches too;
- a failed fetch never drops keys; the last good ones verify until ``max_staleness``, then
  :class:`~gatepass.core.errors.NoUsableKeysError` (a 503, never a 401);
- optionally starts from a last-known-good copy on disk (:mod:`gatepass.core.snapshot`);
- a key revoked on the revocation feed is refused until the revocation expires, even while the
  published JWKS still lists it (:meth:`RemoteKeySet.revoke_key`).

The verifier never calls the issuer itself, and a bad signature under a known key never reaches
this module: only a ``kid`` it has not seen can cause a fetch.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random as _random
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from gatepass.core.clock import Clock, Sleep, system_clock
from gatepass.core.errors import MalformedTokenError, NoUsableKeysError, UnknownKidError
from gatepass.core.fetch import NOT_MODIFIED, OK, Discovery, FetchResult, JwksFetcher
from gatepass.core.jwks import JwksError, ParsedJwks, VerificationKey, is_wellformed_kid, parse_jwks
from gatepass.core.snapshot import Snapshot, read_snapshot, write_snapshot
from gatepass.core.stats import AuthStats, KeySetState

log = logging.getLogger("gatepass.core.jwks")

KeysRemovedListener = Callable[[frozenset[str]], object]
"""Called with the ``kid``s that just left a key set (the verified-token cache drops them)."""

_NEVER = float("-inf")
_MAX_REVOKED = 1024


class KeySource(Protocol):
    """What the verifier needs from a key set."""

    def peek(self, kid: str, now: float) -> VerificationKey | None:
        """The key for ``kid`` if known and usable right now, without waiting for anything."""
        ...

    async def get(self, kid: str) -> VerificationKey:
        """The key for ``kid``, maybe fetched; else a ``TokenError`` or ``KeysUnavailableError``."""
        ...

    def add_listener(self, listener: KeysRemovedListener) -> None: ...


class StaticKeySet:
    """Fixed keys, never fetched, never stale: what the library's tests and the verify benchmark
    (``benchmarks/verify_bench.py``) verify against. No service uses it: an edge follows the
    issuer (:class:`RemoteKeySet`), and the auth service checks its own tokens against what its
    key manager publishes (a key source of its own)."""

    def __init__(self, keys: Iterable[VerificationKey]) -> None:
        self._keys = {key.kid: key for key in keys}

    @classmethod
    def from_jwks(cls, document: bytes | Mapping[str, Any]) -> StaticKeySet:
        return cls(parse_jwks(document).keys.values())

    def peek(self, kid: str, now: float) -> VerificationKey | None:
        return self._keys.get(kid)

    async def get(self, kid: str) -> VerificationKey:
        key = self._keys.get(kid)
        if key is None:
            raise UnknownKidError
        return key

    def add_listener(self, listener: KeysRemovedListener) -> None:
        """Keys never leave a static set: nothing to tell."""


@dataclass(frozen=True)
class KeySetConfig:
    """How a :class:`RemoteKeySet` caches, refetches and gives up. Times are seconds."""

    min_ttl: float = 60.0
    default_ttl: float = 300.0
    max_ttl: float = 24 * 3600.0
    max_staleness: float = 12 * 3600.0
    cooldown: float = 30.0
    negative_ttl: float = 300.0
    negative_size: int = 10_000
    max_bytes: int = 64 * 1024
    fetch_timeout: float = 10.0
    max_retry_interval: float = 300.0

    def __post_init__(self) -> None:
        if not 0 < self.min_ttl <= self.default_ttl <= self.max_ttl:
            raise ValueError("the TTLs must satisfy 0 < min_ttl <= default_ttl <= max_ttl")
        if self.cooldown <= 0 or self.max_staleness <= 0 or self.fetch_timeout <= 0:
            raise ValueError("cooldown, max_staleness and fetch_timeout must be positive")

    def clamp_ttl(self, max_age: float | None) -> float:
        """The issuer's ``max-age``, held within ``[min_ttl, max_ttl]``."""
        ttl = self.default_ttl if max_age is None else max_age
        return min(max(ttl, self.min_ttl), self.max_ttl)


class RemoteKeySet:
    """The issuer's JWKS, discovered from ``issuer`` or fetched from ``jwks_url``.

    Pass an ``httpx.AsyncClient`` to share one (and to test through ``httpx.MockTransport``);
    without one, the set opens its own in :meth:`start` and closes it in :meth:`aclose`.
    """

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        issuer: str | None = None,
        jwks_url: str | None = None,
        config: KeySetConfig | None = None,
        snapshot_path: Path | None = None,
        stats: AuthStats | None = None,
        clock: Clock = system_clock,
        sleep: Sleep = asyncio.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.config = config or KeySetConfig()
        self.stats = stats or AuthStats()
        self.source = jwks_url or issuer or ""
        self._client = client
        self._fetcher = JwksFetcher(
            client,
            issuer=issuer,
            jwks_url=jwks_url,
            max_bytes=self.config.max_bytes,
            timeout=self.config.fetch_timeout,
        )
        self._snapshot_path = snapshot_path
        self._clock, self._sleep, self._random = clock, sleep, random
        self._keys: dict[str, VerificationKey] = {}
        self._etag: str | None = None
        self._validated_at = _NEVER
        self._fresh_until = _NEVER
        self._ttl = self.config.default_ttl
        self._last_attempt_at: float | None = None
        self._last_outcome: str | None = None
        self._failures = 0
        self._next_refresh_at: float | None = None
        self._negative: OrderedDict[str, float] = OrderedDict()
        self._revoked: dict[str, float] = {}  # kid -> until when it stays refused
        self._listeners: list[KeysRemovedListener] = []
        self._inflight: asyncio.Task[FetchResult] | None = None
        self._task: asyncio.Task[None] | None = None

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the last-known-good copy, fetch once, then keep refreshing in the background.

        Never raises for the issuer's failures: an edge must start (and answer 503, with
        readiness saying why) while the issuer is down.
        """
        if self._task is not None:
            return
        if self._fetcher.client is None:
            # Building a client reads CA certificates from disk: keep that off the event loop.
            self._fetcher.client = await asyncio.to_thread(httpx.AsyncClient)
        await self._load_snapshot()
        await self.refresh()
        self._task = asyncio.create_task(self._run(), name="gatepass-jwks-refresh")
        self._task.add_done_callback(_report_crash)

    async def aclose(self) -> None:
        """Stop refreshing; close the HTTP client if this set opened it."""
        for task in (self._task, self._inflight):
            if task is not None:
                task.cancel()
                await asyncio.wait([task])
        self._task = None
        if self._client is None and self._fetcher.client is not None:
            await self._fetcher.client.aclose()
            self._fetcher.client = None

    async def __aenter__(self) -> RemoteKeySet:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- lookups (the verifier's side) ------------------------------------------------------

    def peek(self, kid: str, now: float) -> VerificationKey | None:
        """The hot path: a known ``kid`` while the set is usable. No I/O, no waiting."""
        key = self._keys.get(kid)
        if key is None or now - self._validated_at > self.config.max_staleness:
            return None
        return key

    async def get(self, kid: str) -> VerificationKey:
        """The slow path: stale keys or an unknown ``kid`` (may join or start one fetch)."""
        if not self.usable():
            await self._refresh_unless_cooling(self._clock())
            if not self.usable():
                raise NoUsableKeysError(retry_after=self._retry_after())
        key = self._keys.get(kid)
        return key if key is not None else await self._find_unknown(kid)

    def usable(self) -> bool:
        """Keys present and confirmed by the issuer within ``max_staleness``."""
        age = self._clock() - self._validated_at
        return bool(self._keys) and age <= self.config.max_staleness

    async def _find_unknown(self, kid: str) -> VerificationKey:
        if not is_wellformed_kid(kid):
            raise MalformedTokenError("The access token's key id is malformed.")
        if self._is_revoked(kid, self._clock()) or self._known_unknown(kid):
            raise UnknownKidError
        result = await self._refresh_unless_cooling(self._clock())
        key = self._keys.get(kid)
        if key is not None:
            return key
        if result is not None and result.succeeded:
            self._remember_unknown(kid)
        raise UnknownKidError

    def _known_unknown(self, kid: str) -> bool:
        """The negative cache: ``kid``s a recent fetch did not have."""
        expires = self._negative.get(kid)
        if expires is None:
            return False
        if self._clock() < expires:
            return True
        del self._negative[kid]
        return False

    def _remember_unknown(self, kid: str) -> None:
        self._negative[kid] = self._clock() + self.config.negative_ttl
        self._negative.move_to_end(kid)
        while len(self._negative) > self.config.negative_size:
            self._negative.popitem(last=False)

    # -- fetching ---------------------------------------------------------------------------

    async def refresh(self) -> bool:
        """Fetch now, ignoring the cooldown (joins a fetch in flight). True on success."""
        return (await self._refresh_shared()).succeeded

    async def _refresh_unless_cooling(self, now: float) -> FetchResult | None:
        """Join the fetch in flight, or start one if the cooldown has passed; else ``None``."""
        if self._inflight is None and not self._cooled_down(now):
            return None
        return await self._refresh_shared()

    def _cooled_down(self, now: float) -> bool:
        """The cooldown runs from the start of the last attempt, failed or not."""
        if self._last_attempt_at is None:
            return True
        elapsed = now - self._last_attempt_at
        return not 0 <= elapsed < self.config.cooldown  # a clock stepped back must not block

    async def _refresh_shared(self) -> FetchResult:
        """Single flight: one fetch at a time, shared by every caller (and shielded from them)."""
        if self._inflight is None:
            self._inflight = asyncio.create_task(self._refresh_once(), name="gatepass-jwks-fetch")
        return await asyncio.shield(self._inflight)

    async def _refresh_once(self) -> FetchResult:
        try:
            now = self._last_attempt_at = self._clock()
            # A key whose revocation just expired may be listed still: ask for the whole JWKS.
            revalidate = bool(self._keys) and not self._revocations_expired(now)
            result = await self._fetcher.fetch(self._etag if revalidate else None)
            result = self._apply(result)
            if result.succeeded:
                await self._save_snapshot()
            return result
        finally:
            self._inflight = None

    def _apply(self, result: FetchResult) -> FetchResult:
        """Take what a fetch gave. A failure changes nothing but the counters."""
        if result.outcome == NOT_MODIFIED and not self._keys:
            self._etag = None  # nothing to keep: ask without a validator next time
            result = FetchResult("unexpected_not_modified")
        self.stats.fetched(result.outcome)
        self._last_outcome = result.outcome
        if result.outcome == OK and result.jwks is not None:
            self._install(result.jwks, result.etag)
        if not result.succeeded:
            self._failures += 1
            return result
        self._failures = 0
        self._confirm(self._clock(), result.max_age)
        return result

    def _install(self, parsed: ParsedJwks, etag: str | None) -> None:
        now = self._clock()
        keys = {kid: key for kid, key in parsed.keys.items() if not self._is_revoked(kid, now)}
        removed = frozenset(self._keys.keys() - keys.keys())
        self._keys = keys
        self._etag = etag
        self.stats.skipped(parsed.skipped)
        for kid in keys:
            self._negative.pop(kid, None)
        if removed:
            self._notify(removed)

    def _confirm(self, now: float, max_age: float | None) -> None:
        self._ttl = self.config.clamp_ttl(max_age)
        self._validated_at = now
        self._fresh_until = now + self._ttl

    # -- background refresh -----------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            delay = self._next_delay(self._clock())
            self._next_refresh_at = self._clock() + delay
            await self._sleep(delay)
            await self._refresh_shared()

    def _next_delay(self, now: float) -> float:
        """At 75-90% of the lifetime; after failures, an exponential backoff from the cooldown."""
        if self._failures:
            exponent = min(self._failures - 1, 16)
            backoff = min(self.config.cooldown * 2.0**exponent, self.config.max_retry_interval)
            return max(backoff, self.config.cooldown) * (1 + 0.25 * self._random())
        ahead = self._ttl * (0.1 + 0.15 * self._random())
        return max(self._fresh_until - ahead - now, 1.0)

    def _retry_after(self) -> float:
        if self._last_attempt_at is None:
            return 1.0
        return max(1.0, self.config.cooldown - (self._clock() - self._last_attempt_at))

    # -- the last-known-good copy -----------------------------------------------------------

    async def _load_snapshot(self) -> None:
        if self._snapshot_path is None:
            return
        snapshot = await asyncio.to_thread(read_snapshot, self._snapshot_path)
        if snapshot is None:
            return
        if snapshot.source != self.source:
            log.warning("ignoring a last-known-good JWKS of another issuer")
            return
        try:
            parsed = parse_jwks({"keys": list(snapshot.keys)})
        except JwksError:
            log.warning("ignoring a corrupt last-known-good JWKS")
            return
        self._install(parsed, snapshot.etag)
        self._restore_times(snapshot)

    def _restore_times(self, snapshot: Snapshot) -> None:
        """A copy dated in the future counts from now: it cannot extend its own life."""
        now = self._clock()
        self._ttl = self.config.clamp_ttl(snapshot.ttl)
        self._validated_at = min(snapshot.validated_at, now)
        self._fresh_until = self._validated_at + self._ttl
        log.info("loaded the last-known-good JWKS", extra={"age_seconds": now - self._validated_at})

    async def _save_snapshot(self) -> None:
        if self._snapshot_path is None:
            return
        snapshot = Snapshot(
            source=self.source,
            validated_at=self._validated_at,
            ttl=self._ttl,
            etag=self._etag,
            keys=[dict(key.jwk) for key in self._keys.values()],
        )
        try:
            await asyncio.to_thread(write_snapshot, self._snapshot_path, snapshot)
        except OSError as exc:
            log.warning("cannot write the last-known-good JWKS", extra={"error": str(exc)})

    # -- revocation and listeners -----------------------------------------------------------

    def revoke_key(self, kid: str, until: float | None = None) -> None:
        """Stop trusting ``kid`` now, even while the published JWKS still lists it (a feed
        event), until ``until`` (epoch seconds; ``None``: for good). At most 1,024 are kept."""
        until = math.inf if until is None else until
        if self._revoked.get(kid, -math.inf) < until:
            self._revoked.pop(kid, None)
            self._revoked[kid] = until
            while len(self._revoked) > _MAX_REVOKED:
                del self._revoked[next(iter(self._revoked))]
        if kid in self._keys:
            self._keys = {k: key for k, key in self._keys.items() if k != kid}
            self._notify(frozenset({kid}))

    def _is_revoked(self, kid: str, now: float) -> bool:
        until = self._revoked.get(kid)
        if until is None:
            return False
        if now < until:
            return True
        del self._revoked[kid]  # expired: a JWKS that still lists the key brings it back
        return False

    def _revocations_expired(self, now: float) -> bool:
        """Forget the key revocations that expired; True if there were any."""
        expired = [kid for kid, until in self._revoked.items() if until <= now]
        for kid in expired:
            del self._revoked[kid]
        return bool(expired)

    def add_listener(self, listener: KeysRemovedListener) -> None:
        """Call ``listener`` with the ``kid``s that leave the set."""
        self._listeners.append(listener)

    def _notify(self, removed: frozenset[str]) -> None:
        for listener in self._listeners:
            listener(removed)

    # -- discovery and the HTTP client (shared with the revocation feed) ---------------------

    @property
    def http_client(self) -> httpx.AsyncClient | None:
        """The client this set fetches with (its own once started, if none was given)."""
        return self._fetcher.client

    async def discovery(self, *, refresh: bool = False) -> Discovery | None:
        """The issuer's discovery document as the JWKS fetch last read it; read it now if it
        never was, or with ``refresh``. ``None`` when the issuer did not answer."""
        if self._fetcher.discovery is not None and not refresh:
            return self._fetcher.discovery
        return await self._fetcher.discover()

    # -- state ------------------------------------------------------------------------------

    def state(self) -> KeySetState:
        """A snapshot for readiness probes and metrics."""
        now = self._clock()
        validated = self._validated_at if self._validated_at != _NEVER else None
        return KeySetState(
            source=self.source,
            jwks_uri=self._fetcher.jwks_uri,
            usable=self.usable(),
            fresh=now < self._fresh_until,
            kids=tuple(sorted(self._keys)),
            age_seconds=None if validated is None else now - validated,
            max_staleness=self.config.max_staleness,
            last_success_at=validated,
            fresh_until=None if validated is None else self._fresh_until,
            last_fetch_at=self._last_attempt_at,
            last_fetch_outcome=self._last_outcome,
            next_refresh_at=self._next_refresh_at,
            fetches=dict(self.stats.fetches),
            skipped_keys=dict(self.stats.skipped_keys),
            rejections=dict(self.stats.rejections),
            verified=self.stats.verified,
            cache_hits=self.stats.cache_hits,
        )


def _report_crash(task: asyncio.Task[None]) -> None:
    """The refresh loop only ends by cancellation; anything else is a bug worth a loud log."""
    if not task.cancelled() and task.exception() is not None:
        log.error("the JWKS refresh loop stopped", exc_info=task.exception())

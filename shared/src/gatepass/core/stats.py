"""What a key set, its verifier and the revocation feed have been doing: counters and a
readiness snapshot.

The counters are plain integers bumped on the request path (a dict increment, no lock). The
Prometheus exporter (:mod:`gatepass.stats`) reads them only when scraped, so exporting metrics
costs the hot path nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


class AuthStats:
    """Counters shared by one key set and its verifier."""

    def __init__(self) -> None:
        self.fetches: Counter[str] = Counter()
        self.skipped_keys: Counter[str] = Counter()
        self.rejections: Counter[str] = Counter()
        self.verified = 0
        self.cache_hits = 0

    def fetched(self, outcome: str) -> None:
        self.fetches[outcome] += 1

    def skipped(self, counts: Mapping[str, int]) -> None:
        self.skipped_keys.update(counts)

    def rejected(self, reason: str) -> None:
        self.rejections[reason] += 1


FEED_DISABLED = "disabled"  # revocation_feed is off
FEED_DISCOVERING = "discovering"  # the issuer's discovery document has not been read yet
FEED_NOT_LISTED = "not_listed"  # the issuer lists no feed: the edge runs without one
FEED_CATCHING_UP = "catching_up"  # following the feed, not caught up once yet
FEED_CAUGHT_UP = "caught_up"  # caught up at least once (an answer with more=false)


@dataclass(frozen=True)
class FeedState:
    """A snapshot of the revocation feed follower, for readiness and metrics.

    ``ready``: no feed to follow (off, or the issuer lists none), or caught up once and not
    failing closed (``fail_closed``: no successful answer for ``max_lag`` seconds, so every
    token gets a 503). ``lag_seconds`` counts from the last successful answer (a quiet long
    poll answers every ``wait`` seconds). Times are epoch seconds from the follower's clock.
    """

    status: str
    endpoint: str | None
    caught_up: bool
    fail_closed: bool
    lag_seconds: float | None
    max_lag: float | None
    wait: float
    last_success_at: float | None
    last_event_at: float | None
    last_outcome: str | None
    answers: int
    errors: Mapping[str, int]
    events: Mapping[str, int]
    live: Mapping[str, int]

    @property
    def listed(self) -> bool:
        """The issuer lists a feed and the edge follows it."""
        return self.status in (FEED_CATCHING_UP, FEED_CAUGHT_UP)

    @property
    def ready(self) -> bool:
        if self.status in (FEED_DISABLED, FEED_NOT_LISTED):
            return True
        return self.status == FEED_CAUGHT_UP and not self.fail_closed

    def as_dict(self) -> dict[str, Any]:
        return {"ready": self.ready, **asdict(self)}


@dataclass(frozen=True)
class KeySetState:
    """A snapshot of a key set, for a readiness probe, a health page or metrics.

    ``usable`` is what readiness means: keys are present and younger than ``max_staleness``.
    ``fresh`` only says the cache lifetime has not run out; a stale but usable set still verifies.
    Times are epoch seconds from the key set's clock.
    """

    source: str
    jwks_uri: str | None
    usable: bool
    fresh: bool
    kids: tuple[str, ...]
    age_seconds: float | None
    max_staleness: float
    last_success_at: float | None
    fresh_until: float | None
    last_fetch_at: float | None
    last_fetch_outcome: str | None
    next_refresh_at: float | None
    fetches: Mapping[str, int]
    skipped_keys: Mapping[str, int]
    rejections: Mapping[str, int]
    verified: int
    cache_hits: int
    feed: FeedState | None = None  # set by EdgeAuth, which owns the revocation feed follower

    @property
    def ready(self) -> bool:
        """Keys usable and, where the issuer lists a revocation feed, caught up with it."""
        return self.usable and (self.feed is None or self.feed.ready)

    def checks(self) -> dict[str, bool]:
        """The readiness checks of an edge: ``keys``, and ``revocations`` where it matters: the
        issuer lists a feed, or its discovery was not read yet while the keys are usable (a
        last-known-good copy, or a given ``jwks_url``). With neither keys nor discovery, the
        ``keys`` check alone says the issuer is unreachable."""
        checks = {"keys": self.usable}
        feed = self.feed
        if feed is not None and (feed.listed or (feed.status == FEED_DISCOVERING and self.usable)):
            checks["revocations"] = feed.ready
        return checks

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for a ``/readyz`` body."""
        body = {"ready": self.ready, **asdict(self)}
        if self.feed is not None:
            body["feed"] = self.feed.as_dict()
        return body

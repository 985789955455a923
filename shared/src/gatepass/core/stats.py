"""What a key set and its verifier have been doing: counters and a readiness snapshot.

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

    @property
    def ready(self) -> bool:
        return self.usable

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for a ``/readyz`` body."""
        return {"ready": self.ready, **asdict(self)}

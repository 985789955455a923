"""What an edge's verifier has been doing: counters, a readiness snapshot, Prometheus metrics.

The counters are plain integers bumped on the request path (a dict increment, no lock). Prometheus
reads them only when scraped, through a custom collector, so exporting metrics costs the hot path
nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry


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


class MetricsCollector(Collector):
    """Exposes a key set's state as ``{namespace}_...`` metrics, read at scrape time."""

    def __init__(self, state: Callable[[], KeySetState], namespace: str = "gatepass_edge") -> None:
        self._state = state
        self._ns = namespace

    def collect(self) -> Iterator[Metric]:
        state = self._state()
        yield from self._counters(state)
        yield from self._gauges(state)

    def _counters(self, state: KeySetState) -> Iterator[Metric]:
        yield _labelled(
            f"{self._ns}_jwks_fetches", "JWKS fetches by outcome.", "outcome", state.fetches
        )
        yield _labelled(
            f"{self._ns}_jwks_skipped_keys",
            "JWKS entries skipped, by reason (private_key means the issuer leaks private keys).",
            "reason",
            state.skipped_keys,
        )
        yield _labelled(
            f"{self._ns}_token_rejections", "Rejections by reason.", "reason", state.rejections
        )
        verified = CounterMetricFamily(
            f"{self._ns}_tokens_verified", "Accepted tokens, by path.", labels=["path"]
        )
        verified.add_metric(["signature"], state.verified - state.cache_hits)
        verified.add_metric(["cache"], state.cache_hits)
        yield verified

    def _gauges(self, state: KeySetState) -> Iterator[Metric]:
        yield GaugeMetricFamily(f"{self._ns}_jwks_keys", "Keys held.", value=len(state.kids))
        yield GaugeMetricFamily(
            f"{self._ns}_jwks_usable", "1 when keys are usable.", value=int(state.usable)
        )
        age = -1.0 if state.age_seconds is None else state.age_seconds
        yield GaugeMetricFamily(
            f"{self._ns}_jwks_age_seconds",
            "Seconds since the keys were last confirmed by the issuer (-1: never).",
            value=age,
        )


def _labelled(name: str, doc: str, label: str, counts: Mapping[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=[label])
    for value, count in sorted(counts.items()):
        family.add_metric([value], count)
    return family


def register_metrics(
    registry: CollectorRegistry,
    state: Callable[[], KeySetState],
    namespace: str = "gatepass_edge",
) -> MetricsCollector:
    """Register the collector into ``registry`` (the app's own; never a process global)."""
    collector = MetricsCollector(state, namespace)
    registry.register(collector)
    return collector

"""A key set's counters and state as Prometheus metrics, read at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from gatepass.core.stats import AuthStats, KeySetState

__all__ = ["AuthStats", "KeySetState", "MetricsCollector", "register_metrics"]


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

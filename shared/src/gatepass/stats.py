"""A key set's (and its revocation feed's) counters and state as Prometheus metrics, read at
scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from gatepass.core.stats import AuthStats, FeedState, KeySetState

__all__ = ["AuthStats", "FeedState", "KeySetState", "MetricsCollector", "register_metrics"]


class MetricsCollector(Collector):
    """Exposes a key set's state as ``{namespace}_...`` metrics, read at scrape time."""

    def __init__(self, state: Callable[[], KeySetState], namespace: str = "gatepass_edge") -> None:
        self._state = state
        self._ns = namespace

    def collect(self) -> Iterator[Metric]:
        state = self._state()
        yield from self._counters(state)
        yield from self._gauges(state)
        if state.feed is not None:
            yield from self._feed(state.feed)

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

    def _feed(self, feed: FeedState) -> Iterator[Metric]:
        ns = f"{self._ns}_revocation_feed"
        yield GaugeMetricFamily(
            f"{ns}_listed", "1 while following a feed the issuer lists.", value=int(feed.listed)
        )
        yield GaugeMetricFamily(
            f"{ns}_caught_up", "1 once caught up with the feed.", value=int(feed.caught_up)
        )
        yield GaugeMetricFamily(
            f"{ns}_fail_closed",
            "1 while every token gets 503: no feed answer for feed_max_lag seconds.",
            value=int(feed.fail_closed),
        )
        yield GaugeMetricFamily(
            f"{ns}_lag_seconds",
            "Seconds since the feed's last successful answer (-1: never).",
            value=-1.0 if feed.lag_seconds is None else feed.lag_seconds,
        )
        yield GaugeMetricFamily(
            f"{ns}_last_event_timestamp_seconds",
            "When the last revocation arrived, epoch seconds (-1: never).",
            value=-1.0 if feed.last_event_at is None else feed.last_event_at,
        )
        yield CounterMetricFamily(f"{ns}_answers", "Successful feed answers.", value=feed.answers)
        yield _labelled(f"{ns}_errors", "Failed feed requests by outcome.", "outcome", feed.errors)
        yield _labelled(f"{ns}_events", "Revocations applied, by kind.", "kind", feed.events)
        live = GaugeMetricFamily(
            f"{self._ns}_revocations_live", "Live deny-set entries, by kind.", labels=["kind"]
        )
        for kind, count in sorted(feed.live.items()):
            live.add_metric([kind], count)
        yield live


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

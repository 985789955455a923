"""Reading a service's Prometheus ``/metrics`` page."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["issuer_jwks_requests", "metric_value", "scrape"]


def metric_value(text: str, sample: str, labels: Mapping[str, str] | None = None) -> float:
    """The sum of the samples named ``sample`` whose labels include ``labels`` (0 if none).

    ``sample`` is the exposed sample name: a counter ``x`` shows as ``x_total``.
    """
    wanted = dict(labels or {})
    total = 0.0
    for family in text_string_to_metric_families(text):
        for name, sample_labels, value, *_ in family.samples:
            if name == sample and wanted.items() <= sample_labels.items():
                total += value
    return total


def scrape(client: httpx.Client, base_url: str) -> str:
    response = client.get(f"{base_url}/metrics")
    assert response.status_code == 200, response.text
    return response.text


def issuer_jwks_requests(client: httpx.Client, auth_base_url: str) -> int:
    """JWKS requests the auth service served (200 and 304): what the edges' caches cost it."""
    text = scrape(client, auth_base_url)
    return int(metric_value(text, "gatepass_auth_jwks_requests_total"))

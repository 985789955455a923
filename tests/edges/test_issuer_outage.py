"""The auth service stops: the edges keep letting valid tokens in until the maximum staleness,
then answer 503 (never 401), and recover on their own once it is back.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass

import httpx

from tests.edges.common import assert_keys_unavailable, describe
from tests.edges.conftest import EDGES, MAIL, VIDEO, Edge, EdgeLauncher
from tests.support.auth_client import bearer, login, new_user
from tests.support.metrics import metric_value
from tests.support.procs import ServiceFactory, ServiceProcess

MAX_STALENESS = 6.0
# The issuer's JWKS lives one second and the edges honour that (minimum TTL 1 s), so each edge
# refreshes about every second while the issuer is up, and keeps trying (and failing) during the
# outage: the staleness deadline is then at most ~1 s closer than MAX_STALENESS after the stop.
AUTH_SETTINGS = {"GATEPASS_AUTH_JWKS_MAX_AGE": "1"}
EDGE_SETTINGS = {
    "MAX_STALENESS": str(MAX_STALENESS),
    "REFETCH_COOLDOWN": "1",
    "JWKS_MIN_TTL": "1",
    "JWKS_DEFAULT_TTL": "1",
}
# Before this many seconds after the stop began, every valid token must be let in: the keys were
# confirmed by the issuer at most one refresh period (~1 s) plus scheduling slack before the stop.
SURE_UP_TO = MAX_STALENESS - 2.0
# After this many seconds after the stop ended, the keys are past their staleness whatever happened.
SURE_AFTER = MAX_STALENESS + 0.5
TICK = 0.25  # one fresh, never-seen token to each edge per tick, and the hot token again
FRESH_TOKENS = int((SURE_AFTER + 1.0) / TICK) + 4
RECOVERY_TIMEOUT = 20.0  # an edge retries every second once the issuer is back: 20x that
COLD_EARLY_MIN = 4  # tokens each edge never saw, verified with the stale keys in the early window


@dataclass(frozen=True)
class Answer:
    edge: str
    at: float  # seconds since the stop began, when the request was sent
    status: int
    detail: str
    hot: bool


def fetch_failures(metrics: str) -> float:
    """The edge's failed JWKS fetches (every outcome but ok and not_modified)."""
    total = metric_value(metrics, "gatepass_edge_jwks_fetches_total")
    good = metric_value(metrics, "gatepass_edge_jwks_fetches_total", {"outcome": "ok"})
    kept = metric_value(metrics, "gatepass_edge_jwks_fetches_total", {"outcome": "not_modified"})
    return total - good - kept


async def hammer(
    client: httpx.AsyncClient,
    services: dict[str, ServiceProcess],
    *,
    hot_token: str,
    fresh_tokens: list[str],
    stop_began: float,
    until: float,
) -> list[Answer]:
    """Each tick, to each edge: the hot token (cached by the edge) and a token it never saw."""
    answers: list[Answer] = []

    async def one(edge: Edge, token: str, *, hot: bool) -> None:
        sent = time.monotonic() - stop_began
        url = services[edge.name].url(edge.protected_path)
        response = await client.get(url, headers=bearer(token))
        answers.append(Answer(edge.name, sent, response.status_code, describe(response), hot))

    for token in fresh_tokens:
        if time.monotonic() >= until:
            break
        tick_ends = time.monotonic() + TICK
        await asyncio.gather(
            *(one(edge, hot_token, hot=True) for edge in EDGES),
            *(one(edge, token, hot=False) for edge in EDGES),
        )
        await asyncio.sleep(max(0.0, tick_ends - time.monotonic()))
    return answers


async def test_edges_ride_out_an_issuer_outage_until_max_staleness_then_503_then_recover(
    start_auth: ServiceFactory, edges: EdgeLauncher
) -> None:
    # The edges' imports run while the auth service starts (a start costs seconds); with a
    # one-second cooldown they retry its keys soon after it is up.
    mail, video = edges.launch(MAIL, EDGE_SETTINGS), edges.launch(VIDEO, EDGE_SETTINGS)
    auth = start_auth(AUTH_SETTINGS)
    mail.wait_ready()
    video.wait_ready()
    services = {"mail": mail, "video": video}
    with httpx.Client(base_url=auth.base_url, timeout=10) as client:
        email, _, first = new_user(client)
        # Tokens for the outage, obtained while the issuer is up. Each is sent to an edge for
        # the first time during the outage, so the edge must verify it with its stale keys (a
        # token it verified before comes from its verified-token cache instead).
        tokens = [login(client, email)["access_token"] for _ in range(FRESH_TOKENS + 2)]
    during, (late_token, after_restart_token) = tokens[:FRESH_TOKENS], tokens[FRESH_TOKENS:]
    hot_token = first["access_token"]

    async with httpx.AsyncClient(timeout=10) as client:
        for edge in EDGES:
            warm = await client.get(
                services[edge.name].url(edge.protected_path), headers=bearer(hot_token)
            )
            assert warm.status_code == 200, f"{edge.name}: {describe(warm)}"
        failures_before = {
            name: fetch_failures((await client.get(service.url("/metrics"))).text)
            for name, service in services.items()
        }

        stop_began = time.monotonic()
        auth.stop()
        stopped = time.monotonic() - stop_began
        answers = await hammer(
            client,
            services,
            hot_token=hot_token,
            fresh_tokens=during,
            stop_began=stop_began,
            until=stop_began + stopped + SURE_AFTER,
        )

        # Past the deadline, for certain.
        await asyncio.sleep(max(0.0, stop_began + stopped + SURE_AFTER - time.monotonic()))
        late = {
            edge.name: await client.get(
                services[edge.name].url(edge.protected_path), headers=bearer(late_token)
            )
            for edge in EDGES
        }
        late_hot = {
            edge.name: await client.get(
                services[edge.name].url(edge.protected_path), headers=bearer(hot_token)
            )
            for edge in EDGES
        }
        metrics_down = {
            name: (await client.get(service.url("/metrics"))).text
            for name, service in services.items()
        }

        # During the outage: never a 401 (or anything but 200 / 503), and no failure at all
        # while the keys were certainly within their staleness.
        assert answers, "no traffic was sent during the outage"
        assert max(a.at for a in answers) >= MAX_STALENESS, "the traffic stopped too early"
        unexpected = [a for a in answers if a.status not in (200, 503)]
        assert not unexpected, f"answers other than 200/503 during the outage: {unexpected[:5]}"
        early_failures = [a for a in answers if a.at < SURE_UP_TO and a.status != 200]
        assert not early_failures, (
            f"valid tokens refused within the staleness ({len(early_failures)} of "
            f"{sum(a.at < SURE_UP_TO for a in answers)}): {early_failures[:5]}"
        )
        # The stale keys did verify: tokens each edge never saw were let in (how many ticks fit
        # in the window depends on how busy the machine is; every answer in it was a 200 above).
        cold_early = Counter(a.edge for a in answers if a.at < SURE_UP_TO and not a.hot)
        assert all(cold_early[edge.name] >= COLD_EARLY_MIN for edge in EDGES), cold_early

        for name, metrics in metrics_down.items():
            # The edges kept trying the issuer during the outage, and failed.
            assert fetch_failures(metrics) > failures_before[name], name
            assert metric_value(metrics, "gatepass_edge_jwks_usable") == 0, name
            assert metric_value(metrics, "gatepass_edge_jwks_age_seconds") > MAX_STALENESS, name
        for response in late.values():
            assert_keys_unavailable(response)  # a token the edge never saw: 503, never 401

        # The issuer is back on the same port and data folder: the edges recover, no restart.
        auth.restart()
        with httpx.Client(base_url=auth.base_url, timeout=10) as sync_client:
            fresh_after = login(sync_client, email)["access_token"]
        back = time.monotonic()
        for edge in EDGES:
            url = services[edge.name].url(edge.protected_path)
            status = 0
            while status != 200 and time.monotonic() - back < RECOVERY_TIMEOUT:
                status = (await client.get(url, headers=bearer(after_restart_token))).status_code
                if status != 200:
                    await asyncio.sleep(0.1)
            assert status == 200, f"{edge.name} did not recover within {RECOVERY_TIMEOUT} s"
            for token in (fresh_after, hot_token, late_token):
                answer = await client.get(url, headers=bearer(token))
                assert answer.status_code == 200, f"{edge.name} after recovery: {describe(answer)}"
        for name, service in services.items():
            assert service.running, f"{name} exited"
            metrics = (await client.get(service.url("/metrics"))).text
            assert metric_value(metrics, "gatepass_edge_jwks_usable") == 1, name

    # Last, so the outage and recovery checks above run first: a token the edge had verified
    # before the outage (held in its verified-token cache) must not outlive the keys' staleness.
    for name, response in late_hot.items():
        assert response.status_code == 503, (
            f"{name}: a token verified before the outage was still let in after the maximum "
            f"staleness ({describe(response)}); a token never seen got 503 at the same moment"
        )

"""Revocation across restarts, replicas and an outage: each test with processes of its own.

- An edge started after a revocation refuses the revoked token from its first ready answer: it
  catches up with the feed before it says ready.
- Two auth replicas on one PostgreSQL: a logout through one reaches edges that follow the other.
- The auth service stopped: an edge keeps letting valid tokens in and shows its feed lag; one
  told to fail closed (``FEED_MAX_LAG``) answers 503, never 401, once the feed has been silent
  that long.
"""

from __future__ import annotations

import time

import httpx

from gatepass.runner import GRACEFUL_SHUTDOWN_SECONDS
from tests.edges.common import (
    DEADLINE,
    accepted_at,
    assert_keys_unavailable,
    describe,
    get_with_token,
    refused_within,
)
from tests.edges.conftest import MAIL, VIDEO, EdgeLauncher
from tests.support.auth_client import bearer, new_user
from tests.support.metrics import metric_value, scrape
from tests.support.procs import ServiceFactory

FEED_WAIT = 1.0  # a quiet long poll answers within a second, so a silent feed shows at once
MAX_LAG = 3.0


def logout(auth_url: str, tokens: dict[str, str]) -> None:
    with httpx.Client(base_url=auth_url, timeout=30) as client:
        answer = client.post("/logout", headers=bearer(tokens["access_token"]))
        assert answer.status_code == 204, answer.text


def test_an_edge_started_after_a_revocation_refuses_it_from_its_first_ready_answer(
    start_auth: ServiceFactory, edges: EdgeLauncher
) -> None:
    auth = start_auth()
    mail = edges.launch(MAIL)
    mail.wait_ready()
    with httpx.Client(base_url=auth.base_url, timeout=30) as client:
        _, _, revoked = new_user(client, "revoked")
        _, _, kept = new_user(client, "kept")
    accepted_at({MAIL: mail}, revoked["access_token"])
    logout(auth.base_url, revoked)
    refused_within({MAIL: mail}, revoked["access_token"], DEADLINE)
    mail.stop()

    again = edges.launch(MAIL)
    again.wait_ready()
    with httpx.Client(timeout=10) as client:
        first = get_with_token(client, again.url(MAIL.protected_path), revoked["access_token"])
        assert first.status_code == 401, describe(first)
    accepted_at({MAIL: again}, kept["access_token"])


def test_a_logout_through_one_replica_reaches_edges_following_the_other(
    start_auth: ServiceFactory, edges: EdgeLauncher, postgres_url: str
) -> None:
    database = {"GATEPASS_AUTH_DATABASE_URL": postgres_url}
    first = start_auth(database)
    second = start_auth(database)  # same issuer and key-encryption key, another port
    # The edges fetch keys and follow the feed at the second replica only.
    mail, video = edges.both(
        {"JWKS_URL": second.url("/.well-known/jwks.json"), "FEED_URL": second.url("/revocations")}
    )
    with httpx.Client(base_url=first.base_url, timeout=30) as client:
        _, _, tokens = new_user(client, "replicated")
    accepted_at({MAIL: mail, VIDEO: video}, tokens["access_token"])
    logout(first.base_url, tokens)
    refused_within({MAIL: mail, VIDEO: video}, tokens["access_token"], DEADLINE)


def test_with_the_auth_service_stopped_edges_serve_and_show_the_lag_or_fail_closed(
    start_auth: ServiceFactory, edges: EdgeLauncher
) -> None:
    auth = start_auth()
    wait = {"FEED_WAIT": str(FEED_WAIT)}
    closing = edges.launch(MAIL, {**wait, "FEED_MAX_LAG": str(MAX_LAG)})
    serving = edges.launch(VIDEO, wait)
    closing.wait_ready()
    serving.wait_ready()
    with httpx.Client(base_url=auth.base_url, timeout=30) as client:
        _, _, tokens = new_user(client, "outage")
    token = tokens["access_token"]
    accepted_at({MAIL: closing, VIDEO: serving}, token)

    auth.stop()
    stopped = time.monotonic()
    # Silent for MAX_LAG: the last answer came at most FEED_WAIT before the stop. Twice that.
    deadline = 2 * (MAX_LAG + FEED_WAIT)
    with httpx.Client(timeout=10) as client:
        while True:
            answer = get_with_token(client, closing.url(MAIL.protected_path), token)
            if answer.status_code == 503:
                break
            assert answer.status_code == 200, describe(answer)
            assert time.monotonic() - stopped < deadline, "never failed closed"
            time.sleep(0.1)
        assert_keys_unavailable(answer)
        assert client.get(closing.url("/readyz")).status_code == 503

        # The other edge has no maximum lag: it goes on, and says how far behind it is.
        accepted_at({VIDEO: serving}, token)
        metrics = scrape(client, serving.base_url)
        lag = metric_value(metrics, "gatepass_edge_revocation_feed_lag_seconds")
        assert lag >= MAX_LAG - FEED_WAIT, metrics
        assert metric_value(metrics, "gatepass_edge_revocation_feed_fail_closed") == 0


def test_long_polls_of_edges_gone_do_not_hold_a_stopping_auth_service(
    start_auth: ServiceFactory, edges: EdgeLauncher
) -> None:
    # Edges hold a long poll open at the auth service all the time (FEED_WAIT, 25 s). Once they
    # have stopped (their connections closed), stopping the auth service must not wait for them,
    # as when `./dev up` stops the edges first.
    auth = start_auth()
    mail, video = edges.both()
    mail.stop()
    video.stop()
    started = time.monotonic()
    auth.stop()
    took = time.monotonic() - started
    # A stop that waits for the polls takes the runner's whole grace period, then cancels them.
    assert took < GRACEFUL_SHUTDOWN_SECONDS, f"the auth service took {took:.1f} s to stop"

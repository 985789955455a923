"""The base case: a user who logs in at the auth service is let in at both edges, by scope.

Real processes on loopback (the package's shared stack): the edges discover the issuer, fetch its
keys over HTTP and verify the tokens it signs.
"""

from __future__ import annotations

import httpx

from tests.edges.common import describe, get_with_token
from tests.edges.conftest import MAIL, VIDEO, EdgeStack
from tests.support.auth_client import login, new_user, refresh
from tests.support.metrics import metric_value, scrape


def test_a_logged_in_user_is_let_in_at_both_edges_by_scope(edge_stack: EdgeStack) -> None:
    with httpx.Client(base_url=edge_stack.auth.base_url, timeout=30) as client:
        email, user_id, tokens = new_user(client)
        refreshed = refresh(client, tokens["refresh_token"])
        assert refreshed.status_code == 200, refreshed.text
        from_refresh = refreshed.json()["access_token"]
        from_second_login = login(client, email)["access_token"]
        # A real token, signed by the issuer, that grants mail:read only (the token endpoint
        # narrows a refresh to the scope asked for): video must still turn it away.
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refreshed.json()["refresh_token"],
            "scope": "mail:read",
        }
        narrowed = client.post("/token", data=form)
        assert narrowed.status_code == 200, narrowed.text
        assert narrowed.json()["scope"] == "mail:read"
        narrow = narrowed.json()["access_token"]

    with httpx.Client(timeout=30) as client:
        for edge in (MAIL, VIDEO):
            service = edge_stack.of(edge)
            verified_before = metric_value(
                scrape(client, service.base_url), "gatepass_edge_tokens_verified_total"
            )
            for token in (tokens["access_token"], from_refresh, from_second_login):
                answer = get_with_token(client, service.url(edge.protected_path), token)
                assert answer.status_code == 200, f"{edge.name}: {describe(answer)}"
                assert user_id in answer.text, f"{edge.name} answered for someone else"
            assert client.get(service.url("/about")).status_code == 200  # public
            # No token: a bare challenge (RFC 6750 section 3.1: no error code when none was sent).
            bare = client.get(service.url(edge.protected_path))
            assert bare.status_code == 401, describe(bare)
            assert bare.headers["www-authenticate"].startswith("Bearer ")
            assert "error=" not in bare.headers["www-authenticate"]
            # The library's metrics are exposed, and counted what happened.
            metrics = scrape(client, service.base_url)
            verified = metric_value(metrics, "gatepass_edge_tokens_verified_total")
            assert verified - verified_before >= 3
            assert metric_value(metrics, "gatepass_edge_jwks_usable") == 1

        assert get_with_token(client, edge_stack.mail.url("/inbox"), narrow).status_code == 200
        denied = get_with_token(client, edge_stack.video.url("/videos"), narrow)
        assert denied.status_code == 403, describe(denied)
        assert denied.headers["content-type"].startswith("application/problem+json")
        challenge = denied.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge, challenge
        assert 'scope="video:read"' in challenge, challenge

"""The base case: a user who logs in at the auth service is let in at both edges, by scope."""

from __future__ import annotations

import json

import httpx

from tests.edges.common import describe, get_with_token
from tests.edges.conftest import MAIL, VIDEO
from tests.support.auth_client import login, new_user, refresh
from tests.support.metrics import metric_value, scrape
from tests.support.procs import ServiceFactory


def test_a_logged_in_user_is_let_in_at_both_edges_by_scope(
    start_auth: ServiceFactory, start_mail: ServiceFactory, start_video: ServiceFactory
) -> None:
    auth = start_auth()
    mail, video = start_mail(), start_video()
    # A second auth replica (same database and keys, same issuer) whose policy gives users only
    # mail:read: a real token, signed by the issuer, that video must still turn away.
    mail_only = start_auth({"GATEPASS_AUTH_ROLE_SCOPES": json.dumps({"user": ["mail:read"]})})
    with httpx.Client(base_url=auth.base_url, timeout=10) as client:
        email, user_id, tokens = new_user(client)
        refreshed = refresh(client, tokens["refresh_token"])
        assert refreshed.status_code == 200, refreshed.text
        from_refresh = refreshed.json()["access_token"]
        from_second_login = login(client, email)["access_token"]
    with httpx.Client(base_url=mail_only.base_url, timeout=10) as client:
        narrow = login(client, email)["access_token"]

    with httpx.Client(timeout=10) as client:
        for edge, service in ((MAIL, mail), (VIDEO, video)):
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
            assert metric_value(metrics, "gatepass_edge_tokens_verified_total") >= 3
            assert metric_value(metrics, "gatepass_edge_jwks_usable") == 1

        assert get_with_token(client, mail.url("/inbox"), narrow).status_code == 200
        denied = get_with_token(client, video.url("/videos"), narrow)
        assert denied.status_code == 403, describe(denied)
        assert denied.headers["content-type"].startswith("application/problem+json")
        challenge = denied.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge, challenge
        assert 'scope="video:read"' in challenge, challenge

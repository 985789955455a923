"""What the edge tests share: the edges' answers, read the way a client would."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import httpx

from tests.support.auth_client import bearer

if TYPE_CHECKING:
    from tests.edges.conftest import Edge
    from tests.support.procs import ServiceProcess

PROBLEM_JSON = "application/problem+json"


def problem_reason(response: httpx.Response) -> str | None:
    """The ``reason`` of a problem+json answer (``bad_signature``, ``unknown_kid``...) or None."""
    if not response.headers.get("content-type", "").startswith(PROBLEM_JSON):
        return None
    reason = response.json().get("reason")
    return reason if isinstance(reason, str) else None


def describe(response: httpx.Response) -> str:
    """One line for an assertion message: status, reason, challenge."""
    challenge = response.headers.get("www-authenticate", "-")
    return f"{response.status_code} reason={problem_reason(response)} www-authenticate={challenge}"


def assert_invalid_token(response: httpx.Response, reason: str | None = None) -> None:
    """An RFC 6750 refusal of a bad token: 401, ``error="invalid_token"``, problem+json."""
    assert response.status_code == 401, describe(response)
    challenge = response.headers.get("www-authenticate", "")
    assert challenge.startswith("Bearer "), describe(response)
    assert 'error="invalid_token"' in challenge, describe(response)
    assert response.headers["content-type"].startswith(PROBLEM_JSON), describe(response)
    if reason is not None:
        assert problem_reason(response) == reason, describe(response)


def assert_keys_unavailable(response: httpx.Response) -> None:
    """No usable keys: 503 problem+json with a ``Retry-After``, and no ``invalid_token``."""
    assert response.status_code == 503, describe(response)
    assert response.headers["content-type"].startswith(PROBLEM_JSON), describe(response)
    assert int(response.headers["retry-after"]) >= 1, describe(response)
    assert "invalid_token" not in response.headers.get("www-authenticate", ""), describe(response)


def get_with_token(client: httpx.Client, url: str, token: str) -> httpx.Response:
    return client.get(url, headers=bearer(token))


# A revocation reaches every edge within BOUND seconds (the project's promise, measured by
# ``./dev bench revocation``); tests allow twice that.
BOUND = 1.0
DEADLINE = 2 * BOUND
POLL = 0.02


def accepted_at(edges: Mapping[Edge, ServiceProcess], token: str) -> None:
    """Every edge lets ``token`` in (and has it in its verified-token cache from now on)."""
    with httpx.Client(timeout=10) as client:
        for edge, service in edges.items():
            answer = get_with_token(client, service.url(edge.protected_path), token)
            assert answer.status_code == 200, f"{edge.name}: {describe(answer)}"


def refused_within(edges: Mapping[Edge, ServiceProcess], token: str, deadline: float) -> float:
    """Seconds until every edge refuses ``token`` (401 ``invalid_token``), polling each; fail
    once ``deadline`` seconds have passed with an edge still letting it in."""
    started = time.monotonic()
    waiting = dict(edges)
    with httpx.Client(timeout=10) as client:
        while waiting:
            for edge, service in list(waiting.items()):
                answer = get_with_token(client, service.url(edge.protected_path), token)
                if answer.status_code == 401:
                    assert_invalid_token(answer, "revoked")
                    del waiting[edge]
                else:
                    assert answer.status_code == 200, f"{edge.name}: {describe(answer)}"
            elapsed = time.monotonic() - started
            names = sorted(edge.name for edge in waiting)
            assert not waiting or elapsed < deadline, f"still let in after {elapsed:.2f} s: {names}"
            if waiting:
                time.sleep(POLL)
    return time.monotonic() - started

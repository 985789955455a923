"""What the edge tests share: the edges' answers, read the way a client would."""

from __future__ import annotations

import httpx

from tests.support.auth_client import bearer

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

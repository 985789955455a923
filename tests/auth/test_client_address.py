"""Who the client is, across a real process: X-Forwarded-For counts only from trusted proxies.

The red team rotated ``X-Forwarded-For`` from loopback to escape login throttling, and had the
spoofed value stored as the session's address: uvicorn trusted the header from 127.0.0.1 by
default (and from everyone under ``FORWARDED_ALLOW_IPS=*``). Now no peer is trusted unless the
operator lists it in ``GATEPASS_AUTH_TRUSTED_PROXIES``, and uvicorn's variable has no effect.
"""

from __future__ import annotations

import httpx

from tests.support.auth_client import STRONG_PASSWORD, bearer, new_email, signup
from tests.support.procs import ServiceFactory

SPOOFED = "203.0.113.9"


def login_from(client: httpx.Client, email: str, forwarded_for: str) -> dict[str, str]:
    response = client.post(
        "/login",
        json={"email": email, "password": STRONG_PASSWORD},
        headers={"X-Forwarded-For": forwarded_for},
    )
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


def session_ip(client: httpx.Client, tokens: dict[str, str]) -> str | None:
    sessions = client.get("/sessions", headers=bearer(tokens["access_token"])).json()
    (current,) = (s for s in sessions if s["id"] == tokens["session_id"])
    ip: str | None = current["ip"]
    return ip


def test_a_forwarded_for_header_from_an_untrusted_peer_is_ignored(
    start_auth: ServiceFactory,
) -> None:
    # uvicorn's own variable, set as the k8s manifests used to: it must not re-enable the header.
    auth = start_auth({"FORWARDED_ALLOW_IPS": "*"})
    with httpx.Client(base_url=auth.base_url, timeout=30) as client:
        email = new_email()
        signup(client, email)
        tokens = login_from(client, email, SPOOFED)
        assert session_ip(client, tokens) == "127.0.0.1"

        # A new address for every guess: all of them are still failures from 127.0.0.1.
        statuses = []
        for attempt in range(12):
            response = client.post(
                "/login",
                json={"email": email, "password": "Wrong-password-1"},
                headers={"X-Forwarded-For": f"198.51.100.{attempt + 1}"},
            )
            statuses.append(response.status_code)
            if response.status_code == 429:
                break
        assert statuses[-1] == 429, statuses
    assert "FORWARDED_ALLOW_IPS is ignored" in auth.log_text()


def test_a_trusted_proxy_names_the_client(start_auth: ServiceFactory) -> None:
    auth = start_auth({"GATEPASS_AUTH_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8"})
    with httpx.Client(base_url=auth.base_url, timeout=30) as client:
        email = new_email()
        signup(client, email)
        cases = {
            SPOOFED: SPOOFED,
            # The client's own left part is not believed: the rightmost untrusted address is.
            f"198.51.100.7, {SPOOFED}": SPOOFED,
            f"{SPOOFED}, 10.1.2.3": SPOOFED,  # through a second, trusted proxy
            "[2001:db8::7]:4711": "2001:db8::7",
            # Not an address: never stored; the last proxy that vouched for the chain is.
            "evil.example": "127.0.0.1",
            f"{SPOOFED}, not-an-address": "127.0.0.1",
            "": "127.0.0.1",
        }
        for forwarded_for, expected in cases.items():
            tokens = login_from(client, email, forwarded_for)
            assert session_ip(client, tokens) == expected, forwarded_for

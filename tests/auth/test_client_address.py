"""Who the client is, across a real process: X-Forwarded-For counts only from trusted proxies.

The red team rotated ``X-Forwarded-For`` from loopback to escape login throttling, and had the
spoofed value stored as the session's address: uvicorn trusted the header from 127.0.0.1 by
default (and from everyone under ``FORWARDED_ALLOW_IPS=*``). Now no peer is trusted unless the
operator lists it in ``GATEPASS_AUTH_TRUSTED_PROXIES``, and uvicorn's variable has no effect.

One server for the module, the address seen through a real socket: it trusts 127.0.0.2 (and
10.0.0.0/8) as proxies and runs under ``FORWARDED_ALLOW_IPS=*``; a client on 127.0.0.1 is an
untrusted peer, a client bound to 127.0.0.2 is the proxy. (That no peer at all is trusted when
none is listed is the HTTP layer's own, tested in-process in ``shared/tests/test_http_layer.py``.)
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.support.auth_client import STRONG_PASSWORD, bearer, new_email, signup
from tests.support.procs import ServiceProcess, free_port, report_logs_of

SPOOFED = "203.0.113.9"
UNTRUSTED, PROXY = "127.0.0.1", "127.0.0.2"


@pytest.fixture(scope="module")
def auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    folder = tmp_path_factory.mktemp("client-address")
    port = free_port()
    service = ServiceProcess(
        "auth",
        [sys.executable, "-m", "auth_service", "--host", "127.0.0.1", "--port", str(port)],
        base_url=f"http://127.0.0.1:{port}",
        log_dir=folder / "logs",
        env={
            "GATEPASS_AUTH_ENVIRONMENT": "development",
            "GATEPASS_AUTH_ISSUER": f"http://127.0.0.1:{port}",
            "GATEPASS_AUTH_DATA_DIR": str(folder / "auth-data"),
            "GATEPASS_AUTH_ARGON2_TIME_COST": "1",
            "GATEPASS_AUTH_ARGON2_MEMORY_COST": "8192",
            "GATEPASS_AUTH_ARGON2_PARALLELISM": "1",
            "GATEPASS_AUTH_TRUSTED_PROXIES": f"{PROXY}, 10.0.0.0/8",
            # uvicorn's own variable, set as the k8s manifests used to: it must change nothing.
            "FORWARDED_ALLOW_IPS": "*",
        },
        cwd=folder,
        listening_log="Uvicorn running on",
    )
    with service:
        service.wait_ready()
        yield service


@pytest.fixture
def reported(request: pytest.FixtureRequest, auth: ServiceProcess) -> ServiceProcess:
    """The module's server, its log tail in this test's report if it fails."""
    report_logs_of(request.node, auth)
    return auth


def client_at(auth: ServiceProcess, address: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=auth.base_url, transport=transport, timeout=30)


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
    reported: ServiceProcess,
) -> None:
    with client_at(reported, UNTRUSTED) as client:
        email = new_email()
        signup(client, email)
        tokens = login_from(client, email, SPOOFED)
        assert session_ip(client, tokens) == UNTRUSTED

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
    assert "FORWARDED_ALLOW_IPS is ignored" in reported.log_text()


def test_a_trusted_proxy_names_the_client(reported: ServiceProcess) -> None:
    with client_at(reported, PROXY) as client:
        email = new_email()
        signup(client, email)
        cases = {
            SPOOFED: SPOOFED,
            # The client's own left part is not believed: the rightmost untrusted address is.
            f"198.51.100.7, {SPOOFED}": SPOOFED,
            f"{SPOOFED}, 10.1.2.3": SPOOFED,  # through a second, trusted proxy
            "[2001:db8::7]:4711": "2001:db8::7",
            # Not an address: never stored; the last proxy that vouched for the chain is.
            "evil.example": PROXY,
            f"{SPOOFED}, not-an-address": PROXY,
            "": PROXY,
        }
        for forwarded_for, expected in cases.items():
            tokens = login_from(client, email, forwarded_for)
            assert session_ip(client, tokens) == expected, forwarded_for

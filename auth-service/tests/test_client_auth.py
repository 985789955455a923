"""Client authentication at ``/token`` and ``/introspect`` (RFC 6749 §2.3, RFC 7662 §2.1): sent
credentials must be right, Basic credentials are form-decoded, and failures are throttled.

In-process: the real app over ASGI, a real SQLite file, the clock moved by the test.
"""

from __future__ import annotations

import asyncio
import base64
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest
from asgi_clients import client_from
from fastapi import FastAPI
from pydantic import SecretStr, ValidationError

from auth_service.config import Settings
from auth_service.state import Services

PASSWORD = "correct horse battery staple 42"
# Secrets with a space and a plus: form-encoded, "two words+and more" is "two+words%2Band+more".
BACKEND_SECRET = "two words+and more"
MAIL_SECRET = "mail secret+for tests"
CHALLENGE = 'Basic realm="gatepass"'


@pytest.fixture
def auth_settings(auth_settings: Settings) -> Settings:
    return auth_settings.model_copy(
        update={
            "clients": {"backend": SecretStr(BACKEND_SECRET)},
            "introspection_clients": {"mail": SecretStr(MAIL_SECRET)},
        }
    )


def basic(client_id: str, secret: str, *, encode: bool = True) -> dict[str, str]:
    """RFC 6749 §2.3.1: each part form-encoded, then Basic (``encode=False``: sent raw)."""
    if encode:
        client_id, secret = quote_plus(client_id), quote_plus(secret)
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def log_in(http: httpx.AsyncClient, client_id: str | None = None) -> dict[str, Any]:
    """A user signed up (once) and logged in, for the client named (the public default else);
    the confidential ``backend`` authenticates with HTTP Basic, as it must."""
    await http.post("/signup", json={"email": "ann@example.com", "password": PASSWORD})
    body: dict[str, Any] = {"email": "ann@example.com", "password": PASSWORD}
    headers = basic("backend", BACKEND_SECRET) if client_id == "backend" else {}
    if client_id is not None:
        body["client_id"] = client_id
    response = await http.post("/login", json=body, headers=headers)
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


def grant(refresh_token: str, **extra: str) -> dict[str, str]:
    return {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}


def assert_invalid_client(response: httpx.Response, status: int = 401) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"] == CHALLENGE
    assert response.headers["Cache-Control"] == "no-store"


# -- /token ------------------------------------------------------------------------------------


async def test_token_refuses_credentials_that_are_wrong(client: httpx.AsyncClient) -> None:
    tokens = await log_in(client)
    form = grant(tokens["refresh_token"])
    for headers in (
        basic("nobody", "anything"),  # a client that does not exist
        basic("backend", "wrong"),  # a wrong secret
        {"Authorization": "Basic !!not-base64!!"},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
        {"Authorization": "Bearer " + tokens["access_token"]},  # not client authentication
    ):
        assert_invalid_client(await client.post("/token", data=form, headers=headers))
    assert_invalid_client(
        await client.post("/token", data={**form, "client_id": "backend", "client_secret": "x"})
    )
    assert_invalid_client(await client.post("/token", data={**form, "client_secret": "x"}))
    # None of these used the refresh token up: the public client still refreshes with it.
    assert (await client.post("/token", data=form)).status_code == 200


async def test_a_confidential_client_refreshes_only_its_own_tokens(
    client: httpx.AsyncClient,
) -> None:
    public = await log_in(client)
    own = await log_in(client, "backend")
    as_backend = basic("backend", BACKEND_SECRET)

    refreshed = await client.post("/token", data=grant(own["refresh_token"]), headers=as_backend)
    assert refreshed.status_code == 200, refreshed.text
    posted = await client.post(
        "/token",
        data=grant(
            refreshed.json()["refresh_token"], client_id="backend", client_secret=BACKEND_SECRET
        ),
    )
    assert posted.status_code == 200, posted.text

    foreign = await client.post("/token", data=grant(public["refresh_token"]), headers=as_backend)
    assert foreign.status_code == 400
    assert foreign.json()["error"] == "invalid_grant"

    # Naming a confidential client without its secret is not authenticating as it.
    named = await client.post(
        "/token", data=grant(posted.json()["refresh_token"], client_id="backend")
    )
    assert_invalid_client(named)
    # Two methods at once is refused (RFC 6749 §2.3).
    both = await client.post(
        "/token",
        data=grant(posted.json()["refresh_token"], client_id="backend", client_secret="x"),
        headers=as_backend,
    )
    assert both.status_code == 400
    assert both.json()["error"] == "invalid_request"
    # Basic for one client, client_id of another.
    mismatch = await client.post(
        "/token",
        data=grant(posted.json()["refresh_token"], client_id="gatepass-app"),
        headers=as_backend,
    )
    assert_invalid_client(mismatch)


async def test_a_confidential_client_token_is_refused_to_a_caller_naming_no_client(
    client: httpx.AsyncClient,
) -> None:
    own = await log_in(client, "backend")
    anonymous = await client.post("/token", data=grant(own["refresh_token"]))
    assert anonymous.status_code == 400, anonymous.text
    assert anonymous.json()["error"] == "invalid_grant"
    # Refused without being spent: the client itself still refreshes with it.
    as_backend = basic("backend", BACKEND_SECRET)
    refreshed = await client.post("/token", data=grant(own["refresh_token"]), headers=as_backend)
    assert refreshed.status_code == 200, refreshed.text


async def test_a_login_naming_a_confidential_client_must_authenticate_it(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/signup", json={"email": "ann@example.com", "password": PASSWORD})
    body = {"email": "ann@example.com", "password": PASSWORD, "client_id": "backend"}
    for headers in ({}, basic("backend", "wrong"), basic("mail", MAIL_SECRET)):
        refused = await client.post("/login", json=body, headers=headers)
        assert refused.status_code == 401, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "invalid_client"
        assert refused.headers["WWW-Authenticate"] == CHALLENGE
        assert "access_token" not in refused.text
    accepted = await client.post("/login", json=body, headers=basic("backend", BACKEND_SECRET))
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["access_token"]


async def test_public_clients_keep_working(client: httpx.AsyncClient) -> None:
    tokens = await log_in(client)
    bare = await client.post("/token", data=grant(tokens["refresh_token"]))
    assert bare.status_code == 200, bare.text
    named = await client.post(
        "/token", data=grant(bare.json()["refresh_token"], client_id="gatepass-app")
    )
    assert named.status_code == 200, named.text


# -- Basic credentials are form-decoded ---------------------------------------------------------


async def test_basic_credentials_are_form_decoded(app: FastAPI, client: httpx.AsyncClient) -> None:
    tokens = await log_in(client, "backend")
    form = {"token": tokens["access_token"]}
    right = await client.post("/introspect", data=form, headers=basic("mail", MAIL_SECRET))
    assert right.status_code == 200, right.text
    assert right.json()["active"] is True
    refreshed = await client.post(
        "/token", data=grant(tokens["refresh_token"]), headers=basic("backend", BACKEND_SECRET)
    )
    assert refreshed.status_code == 200, refreshed.text
    # Sent without form-encoding, the "+" reads as a space: not the secret.
    async with client_from(app, "192.0.2.50") as other:
        raw = await other.post(
            "/introspect", data=form, headers=basic("mail", MAIL_SECRET, encode=False)
        )
    assert_invalid_client(raw)


# -- /introspect -------------------------------------------------------------------------------


async def test_introspection_is_for_introspection_clients(client: httpx.AsyncClient) -> None:
    tokens = await log_in(client)
    form = {"token": tokens["access_token"]}
    assert_invalid_client(await client.post("/introspect", data=form))
    assert_invalid_client(
        await client.post("/introspect", data=form, headers=basic("backend", BACKEND_SECRET))
    )
    active = await client.post("/introspect", data=form, headers=basic("mail", MAIL_SECRET))
    assert active.json()["active"] is True


# -- throttling --------------------------------------------------------------------------------


async def test_concurrent_secret_guesses_stop_at_the_allowance(
    app: FastAPI, client: httpx.AsyncClient, services: Services
) -> None:
    tokens = await log_in(client)
    form = {"token": tokens["access_token"]}
    allowance = services.settings.throttle_client_ip_free
    async with client_from(app, "198.51.100.66") as attacker:
        guesses = await asyncio.gather(
            *(
                attacker.post("/introspect", data=form, headers=basic("mail", f"guess-{i}"))
                for i in range(40)
            )
        )
        # The right secret from the blocked address waits too: nothing to learn there.
        right = await attacker.post("/introspect", data=form, headers=basic("mail", MAIL_SECRET))
    assert Counter(r.status_code for r in guesses) == {401: allowance, 429: 40 - allowance}
    for refused in (r for r in guesses if r.status_code == 429):
        assert_invalid_client(refused, 429)
        assert int(refused.headers["Retry-After"]) >= 1
    assert right.status_code == 429
    # The client itself, from its own address, is not locked out.
    mail = await client.post("/introspect", data=form, headers=basic("mail", MAIL_SECRET))
    assert mail.status_code == 200
    invalid = services.metrics.registry.get_sample_value(
        "gatepass_auth_client_authentications_total", {"outcome": "invalid"}
    )
    assert invalid == allowance


async def test_guesses_spread_over_addresses_meet_the_client_rule(
    app: FastAPI, client: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services.settings, "throttle_client_free", 3)
    tokens = await log_in(client)
    form = grant(tokens["refresh_token"])
    for i in range(3):
        async with client_from(app, f"203.0.113.{i}") as sprayer:
            wrong = await sprayer.post("/token", data=form, headers=basic("backend", "guess"))
            assert_invalid_client(wrong)
    async with client_from(app, "203.0.113.0") as sprayer:  # it failed before: the client rule
        assert_invalid_client(
            await sprayer.post("/token", data=form, headers=basic("backend", "guess")), 429
        )
    async with client_from(app, "203.0.113.99") as fresh:  # a clean address: one attempt
        assert_invalid_client(
            await fresh.post("/token", data=form, headers=basic("backend", "guess"))
        )
        assert_invalid_client(
            await fresh.post("/token", data=form, headers=basic("backend", "guess")), 429
        )
    # The real client, from its clean address, still authenticates.
    own = await log_in(client, "backend")
    refreshed = await client.post(
        "/token", data=grant(own["refresh_token"]), headers=basic("backend", BACKEND_SECRET)
    )
    assert refreshed.status_code == 200, refreshed.text


def test_one_client_cannot_have_two_secrets(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(
            environment="development",
            data_dir=tmp_path,
            clients={"mail": SecretStr("first-secret-value")},
            introspection_clients={"mail": SecretStr("other-secret-value")},
        )
    assert "'mail' has different secrets" in str(caught.value)
    assert "secret-value" not in str(caught.value)
    same = Settings(
        environment="development",
        data_dir=tmp_path,
        clients={"mail": SecretStr("one")},
        introspection_clients={"mail": SecretStr("one")},
    )
    assert set(same.confidential_clients) == {"mail"}

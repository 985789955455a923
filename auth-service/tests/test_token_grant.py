"""The token endpoint's semantics: error descriptions that never echo the request (RFC 6749 §5.2),
and the refresh grant's ``scope`` (RFC 6749 §6, §3.3).

In-process: the real app over ASGI, a real SQLite file.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import jwt
import pytest

PASSWORD = "correct horse battery staple 42"
FORM = {"content-type": "application/x-www-form-urlencoded"}
# RFC 6749 §5.2: error_description = 1*( %x20-21 / %x23-5B / %x5D-7E )
DESCRIPTION = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]+")
USER_SCOPES = {"mail:read", "mail:send", "video:read", "video:upload"}


async def sign_in(client: httpx.AsyncClient) -> dict[str, Any]:
    signed_up = await client.post(
        "/signup", json={"email": "ann@example.com", "password": PASSWORD}
    )
    assert signed_up.status_code == 201, signed_up.text
    login = await client.post("/login", json={"email": "ann@example.com", "password": PASSWORD})
    assert login.status_code == 200, login.text
    body: dict[str, Any] = login.json()
    return body


def scope_claim(answer: dict[str, Any]) -> set[str]:
    claims = jwt.decode(answer["access_token"], options={"verify_signature": False})
    return set(str(claims["scope"]).split())


async def grant(client: httpx.AsyncClient, refresh_token: str, **extra: str) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    return await client.post("/token", data=form)


# --- error descriptions ------------------------------------------------------------------------

HOSTILE = '"\\\x01\x7fé<script>'  # quote, backslash, controls, non-ASCII: all outside §5.2


@pytest.mark.parametrize(
    ("body", "error"),
    [
        pytest.param(
            f"{HOSTILE}=1&{HOSTILE}=2&grant_type=refresh_token", "invalid_request", id="repeated"
        ),
        pytest.param(f"grant_type={HOSTILE}", "unsupported_grant_type", id="grant type"),
        pytest.param(
            f"grant_type={HOSTILE}&grant_type=refresh_token", "invalid_request", id="repeated 2"
        ),
        pytest.param("grant_type=refresh_token", "invalid_request", id="missing"),
        pytest.param(
            f"grant_type=refresh_token&refresh_token={HOSTILE}", "invalid_grant", id="unknown"
        ),
        pytest.param(
            f"grant_type=refresh_token&refresh_token=x&scope={HOSTILE}",
            "invalid_scope",
            id="scope",
        ),
    ],
)
async def test_error_descriptions_are_fixed_text_that_never_echoes_the_request(
    client: httpx.AsyncClient, body: str, error: str
) -> None:
    response = await client.post("/token", content=body.encode("utf-8"), headers=FORM)
    assert response.status_code == 400
    answer = response.json()
    assert answer["error"] == error
    description = answer["error_description"]
    assert DESCRIPTION.fullmatch(description), description
    for fragment in ("script", "<", "'", HOSTILE):
        assert fragment not in description


async def test_a_non_form_body_gets_a_fixed_description(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/token", content=b"{}", headers={"content-type": 'application/json; x="\\"'}
    )
    answer = response.json()
    assert answer["error"] == "invalid_request"
    assert DESCRIPTION.fullmatch(answer["error_description"])
    assert '"' not in answer["error_description"]


# --- scope -------------------------------------------------------------------------------------


async def test_a_narrower_scope_narrows_the_access_token_only(
    client: httpx.AsyncClient,
) -> None:
    tokens = await sign_in(client)
    narrowed = await grant(client, tokens["refresh_token"], scope="video:read mail:read")
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["scope"] == "mail:read video:read"
    assert scope_claim(narrowed.json()) == {"mail:read", "video:read"}
    # The refresh token keeps the original grant: without scope, the next one has it all.
    whole = await grant(client, narrowed.json()["refresh_token"])
    assert set(whole.json()["scope"].split()) == USER_SCOPES
    assert scope_claim(whole.json()) == USER_SCOPES


@pytest.mark.parametrize(
    "scope", ["admin", "mail:read admin", "video:delete", "nosuch:scope"], ids=str
)
async def test_a_scope_beyond_the_grant_is_invalid_scope_and_spends_nothing(
    client: httpx.AsyncClient, scope: str
) -> None:
    tokens = await sign_in(client)
    refused = await grant(client, tokens["refresh_token"], scope=scope)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_scope"
    assert (await grant(client, tokens["refresh_token"])).status_code == 200


@pytest.mark.parametrize(
    "scope",
    [
        "",
        " ",
        "mail:read  video:read",
        " mail:read",
        "mail:read ",
        'a"b',
        "a\\b",
        "mail:réad",
        "mail:read\tvideo:read",
        "mail:read\x7f",
        "x" * 1025,
    ],
    ids=repr,
)
async def test_a_malformed_scope_is_invalid_scope(client: httpx.AsyncClient, scope: str) -> None:
    tokens = await sign_in(client)
    refused = await grant(client, tokens["refresh_token"], scope=scope)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_scope"
    assert (await grant(client, tokens["refresh_token"])).status_code == 200

"""Signup: the password policy (each refusal a 422 ``weak_password`` with a reason, never the
password), and the per-address signup limit. In-process, on the clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Protocol

import httpx
import pytest
from asgi_clients import client_from
from fastapi import FastAPI

from auth_service.config import Settings
from auth_service.state import Services

STRONG = "correct horse battery staple 42"


class MovableClock(Protocol):
    now: datetime

    def advance(self, seconds: float) -> None: ...


@pytest.fixture
def auth_settings(auth_settings: Settings) -> Settings:
    return auth_settings.model_copy(update={"throttle_signup_free": 3})


@pytest.fixture
async def fresh(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client at an address of its own per test, so the signup limit stays out of the way."""
    async with client_from(app, "192.0.2.77") as http:
        yield http


REFUSED = [
    pytest.param("\ufdfa", "too_short", id="one-char-nfkc-expands-to-18"),
    pytest.param(" " * 8, "whitespace", id="eight-spaces"),
    pytest.param("\u3000" * 8, "whitespace", id="eight-ideographic-spaces"),
    pytest.param("aaaaaaaa", "repetitive", id="one-char-repeated"),
    pytest.param("abababababab", "repetitive", id="two-chars"),
    pytest.param("abcabcabcabc", "repetitive", id="short-unit-repeated"),
    pytest.param("abcdefghij", "repetitive", id="run"),
    pytest.param("98765432", "repetitive", id="run-down"),
    pytest.param("password1!", "common", id="common-with-suffix"),
    pytest.param("Pass Word 2024!!", "common", id="common-case-space-suffix"),
    pytest.param("PASSWORD", "common", id="common-uppercase"),
    pytest.param(
        "\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44\uff11", "common", id="common-fullwidth"
    ),
    pytest.param("pass\u200bword", "invisible_characters", id="zero-width-space"),
    pytest.param("pass\u202eword99", "invisible_characters", id="bidi-override"),
    pytest.param("tab\tseparated", "invisible_characters", id="control"),
    pytest.param("unassigned\U000e0080x", "invisible_characters", id="unassigned"),
    pytest.param("x" * 129, "too_long", id="too-long"),
    pytest.param("alice2024!", "email", id="email-local-part"),
]


@pytest.mark.parametrize(("password", "reason"), REFUSED)
async def test_weak_passwords_are_refused_with_a_reason(
    fresh: httpx.AsyncClient, password: str, reason: str
) -> None:
    response = await fresh.post(
        "/signup", json={"email": "alice@example.com", "password": password}
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert (body["code"], body["reason"]) == ("weak_password", reason)
    assert password not in response.text


@pytest.mark.parametrize(
    "password",
    [
        STRONG,
        "Tr0ub4dor&3 horse",
        "pässwörd-ünïcödé-42",
        "\ufdfa and seven",  # the ligature counts once, and is fine among other characters
        "Xk9#pQ2!Xk9#pQ2!",  # a repeated unit as long as a valid password is as strong as it
        "dragon fly over 2 hills",
    ],
)
async def test_reasonable_passwords_pass(fresh: httpx.AsyncClient, password: str) -> None:
    response = await fresh.post("/signup", json={"email": "bob@example.com", "password": password})
    assert response.status_code == 201, response.text


async def test_signup_is_limited_per_address(
    app: FastAPI, services: Services, clock: MovableClock
) -> None:
    free = services.settings.throttle_signup_free
    async with client_from(app, "198.51.100.7") as crowd, client_from(app, "192.0.2.8") as other:
        statuses = [
            (await crowd.post("/signup", json={"email": f"u{i}@example.com", "password": STRONG}))
            for i in range(free - 1)
        ]
        # A taken email counts too: the limit is on attempts (each one costs a hash).
        taken = await crowd.post("/signup", json={"email": "u0@example.com", "password": STRONG})
        limited = await crowd.post(
            "/signup", json={"email": "late@example.com", "password": STRONG}
        )
        elsewhere = await other.post(
            "/signup", json={"email": "else@example.com", "password": STRONG}
        )
        clock.advance(int(limited.headers["Retry-After"]))
        later = await crowd.post("/signup", json={"email": "late@example.com", "password": STRONG})
    assert [r.status_code for r in statuses] == [201] * (free - 1)
    assert taken.status_code == 409
    assert limited.status_code == 429
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.json()["code"] == "too_many_signups"
    assert int(limited.headers["Retry-After"]) >= 1
    assert elsewhere.status_code == 201
    assert later.status_code == 201
    throttled = services.metrics.registry.get_sample_value(
        "gatepass_auth_signups_total", {"outcome": "throttled"}
    )
    assert throttled == 1


async def test_refused_passwords_do_not_use_up_the_signup_limit(
    app: FastAPI, services: Services
) -> None:
    async with client_from(app, "198.51.100.9") as http:
        for _ in range(3 * services.settings.throttle_signup_free):
            weak = await http.post(
                "/signup", json={"email": "w@example.com", "password": "aaaaaaaa"}
            )
            assert weak.status_code == 422
        ok = await http.post("/signup", json={"email": "w@example.com", "password": STRONG})
    assert ok.status_code == 201


@pytest.mark.parametrize(
    "look_alike",
    [
        "\uff41\uff44\uff4d\uff49\uff4e@example.com",  # full-width "admin"
        "ad\u2139min@example.com",  # the information source sign, NFKC "i"
        "admin\u2077@example.com",  # a superscript seven
    ],
)
async def test_an_address_in_compatibility_characters_is_refused(
    fresh: httpx.AsyncClient, look_alike: str
) -> None:
    """A red team signed up a full-width copy of an existing address as a new account, which
    lists and reads like the original. An address that Unicode compatibility normalisation
    (NFKC) would change is refused; the plain form of the address is the one to use."""
    answer = await fresh.post("/signup", json={"email": look_alike, "password": STRONG})
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "invalid_email"
    assert look_alike not in answer.text


async def test_an_address_in_another_script_is_still_welcome(fresh: httpx.AsyncClient) -> None:
    for email in (
        "jos\u00e9@example.com",
        "\u7528\u6237@example.com",
        "d\u00f6rte@b\u00fccher.example",
    ):
        answer = await fresh.post("/signup", json={"email": email, "password": STRONG})
        assert answer.status_code == 201, answer.text

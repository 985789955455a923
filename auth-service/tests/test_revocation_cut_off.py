"""The user-wide cut-off is exact although ``iat`` is whole seconds: a revocation at T revokes
every token issued up to T, even within T's second, because nothing is signed for a user while
their cut-off (floor(T) + 1) is still ahead: the issuer waits for it, then signs with
``iat`` = floor(now). No ``iat`` is ever moved.

In-process: the real app over ASGI, a real SQLite file; the clock and the service's sleep are the
test's (``clock.sleep`` moves the clock at once and records the wait).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from auth_service import accounts
from auth_service.models import User
from auth_service.state import Services

PASSWORD = "correct horse battery staple 42"


def at(clock: Any, start: datetime, seconds: float) -> None:
    clock.now = start + timedelta(seconds=seconds)


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def claims(tokens: dict[str, Any]) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(
        tokens["access_token"], options={"verify_signature": False}
    )
    return decoded


async def sign_in(client: httpx.AsyncClient, email: str) -> tuple[str, dict[str, Any]]:
    """Sign up and log in: (user id, login answer)."""
    signed_up = await client.post("/signup", json={"email": email, "password": PASSWORD})
    assert signed_up.status_code == 201, signed_up.text
    return signed_up.json()["id"], await log_in(client, email)


async def log_in(client: httpx.AsyncClient, email: str) -> dict[str, Any]:
    login = await client.post("/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    body: dict[str, Any] = login.json()
    return body


async def refresh(client: httpx.AsyncClient, tokens: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def set_roles(
    client: httpx.AsyncClient, admin: dict[str, Any], user_id: str, roles: list[str]
) -> httpx.Response:
    return await client.put(
        f"/admin/users/{user_id}/roles", json={"roles": roles}, headers=bearer(admin)
    )


async def an_admin(client: httpx.AsyncClient, services: Services) -> dict[str, Any]:
    root_id, _ = await sign_in(client, "root@example.com")
    await accounts.set_roles(services, root_id, ["admin"])
    return await log_in(client, "root@example.com")  # waits out its own cut-off


@pytest.fixture
def start(clock: Any) -> datetime:
    """A whole second, well before the scenarios' instants."""
    now: datetime = clock.now
    assert now.microsecond == 0
    return now


async def test_promote_refresh_demote_in_one_second_leaves_no_admin_token(
    client: httpx.AsyncClient, services: Services, clock: Any, start: datetime
) -> None:
    admin = await an_admin(client, services)
    ann_id, ann_login = await sign_in(client, "ann@example.com")

    at(clock, start, 10.2)
    assert (await set_roles(client, admin, ann_id, ["user", "admin"])).status_code == 200
    at(clock, start, 10.4)
    clock.slept.clear()
    promoted = await refresh(client, ann_login)
    assert "admin" in promoted["scope"].split()
    clock.advance(0.2)
    assert (await set_roles(client, admin, ann_id, ["user"])).status_code == 200

    # The token signed with the admin role is refused wherever the issuer checks it...
    assert (await client.get("/me", headers=bearer(promoted))).status_code == 401
    assert (await client.get("/admin/users", headers=bearer(promoted))).status_code == 401
    regrant = await set_roles(client, promoted, ann_id, ["user", "admin"])
    assert regrant.status_code == 401
    assert (await client.get(f"/admin/users/{ann_id}", headers=bearer(admin))).json()["roles"] == [
        "user"
    ]
    # ...because it was signed only once the promotion's cut-off had come: no iat moved ahead.
    assert clock.slept == [pytest.approx(0.6)]
    assert claims(promoted)["iat"] == int((start + timedelta(seconds=11)).timestamp())
    # The role changes revoked what came before them, and a new refresh carries the demotion.
    assert (await client.get("/me", headers=bearer(ann_login))).status_code == 401
    demoted = await refresh(client, promoted)
    assert "admin" not in demoted["scope"].split()
    assert (await client.get("/me", headers=bearer(demoted))).status_code == 200
    assert (await client.get("/admin/users", headers=bearer(demoted))).status_code == 403


async def test_a_demotion_during_the_wait_is_what_the_token_carries(
    client: httpx.AsyncClient, services: Services, clock: Any, start: datetime
) -> None:
    admin = await an_admin(client, services)
    ann_id, ann_login = await sign_in(client, "ann@example.com")
    at(clock, start, 10.2)
    assert (await set_roles(client, admin, ann_id, ["user", "admin"])).status_code == 200

    async def demoted_meanwhile(seconds: float) -> None:
        clock.advance(0.2)  # at 10.6, while the refresh of 10.4 waits for 11
        await accounts.set_roles(services, ann_id, ["user"])
        await clock.sleep(seconds - 0.2)

    services.sleep = demoted_meanwhile
    at(clock, start, 10.4)
    token = await refresh(client, ann_login)
    assert "admin" not in token["scope"].split()
    assert claims(token)["iat"] == int((start + timedelta(seconds=11)).timestamp())
    assert (await client.get("/me", headers=bearer(token))).status_code == 200
    assert (await client.get("/admin/users", headers=bearer(token))).status_code == 403


async def test_a_revocation_revokes_tokens_issued_in_its_own_second(
    client: httpx.AsyncClient, services: Services, clock: Any, start: datetime
) -> None:
    at(clock, start, 20.0)  # a token issued on the whole second, revoked at that same instant
    ann_id, tokens = await sign_in(client, "ann@example.com")
    assert claims(tokens)["iat"] == int(clock.now.timestamp())
    await accounts.set_roles(services, ann_id, ["viewer"])
    assert (await client.get("/me", headers=bearer(tokens))).status_code == 401


async def test_a_login_waits_for_the_cut_off_instead_of_moving_its_iat(
    client: httpx.AsyncClient, services: Services, clock: Any, start: datetime
) -> None:
    ann_id, _ = await sign_in(client, "ann@example.com")
    at(clock, start, 5.2)
    await accounts.set_roles(services, ann_id, ["viewer"])
    at(clock, start, 5.7)
    clock.slept.clear()
    tokens = await log_in(client, "ann@example.com")
    assert claims(tokens)["iat"] <= clock.now.timestamp()  # never ahead of the clock
    assert claims(tokens)["iat"] == int((start + timedelta(seconds=6)).timestamp())
    assert clock.slept == [pytest.approx(0.3)]
    assert claims(tokens)["scope"] == "mail:read video:read"
    assert (await client.get("/me", headers=bearer(tokens))).status_code == 200


async def test_a_cut_off_that_stays_ahead_is_a_503_and_changes_nothing(
    client: httpx.AsyncClient, services: Services, clock: Any
) -> None:
    ann_id, tokens = await sign_in(client, "ann@example.com")
    async with services.sessions() as db:  # a cut-off set by a replica whose clock runs ahead
        user = await db.get(User, ann_id)
        assert user is not None
        user.tokens_not_before = clock.now + timedelta(seconds=5)
        await db.commit()
    clock.slept.clear()
    response = await client.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert response.status_code == 503
    assert response.json()["code"] == "revocation_pending"
    assert response.headers["Retry-After"] == "1"
    assert clock.slept == [1.0, 1.0, 1.0]  # never more than a second at a time
    clock.advance(2)
    assert "refresh_token" in await refresh(client, tokens)  # the refused attempts wrote nothing

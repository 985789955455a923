"""Every way of revoking reaches the edges' feed, as the event the contract names: logout and
device sign-out (``session``), logout everywhere, disable, role and password change (``user``,
with its cut-off), refresh-token reuse (``session``), RFC 7009 revocation (``session`` for a
refresh token, ``jti`` for an access token) and key revocation (``key``).

In-process over ASGI with the test's clock: each test reads the feed up to now, revokes, and
checks the events that follow.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import httpx
from api_users import PASSWORD, bearer, jose_part, login, new_email, new_user
from feed_helpers import MovableClock, caught_up, events_after, without_ids
from refresh_helpers import refresh

from auth_service import accounts
from auth_service.config import Settings
from auth_service.state import Services

LEEWAY = 60


def seconds(moment: datetime) -> int:
    return math.ceil(moment.timestamp())


def lifetime(settings: Settings, now: datetime) -> int:
    """When an event recorded at ``now`` expires: every token it affects is dead by then."""
    return seconds(now + timedelta(seconds=settings.access_token_ttl + LEEWAY))


def cut_off(now: datetime) -> int:
    return int(now.timestamp()) + 1


async def test_logout_and_device_sign_out_feed_session_events(
    client: httpx.AsyncClient, clock: MovableClock, auth_settings: Settings
) -> None:
    email, _, laptop = await new_user(client)
    phone = await login(client, email)
    cursor = await caught_up(client)

    signed_out = await client.delete(
        f"/sessions/{phone['session_id']}", headers=bearer(laptop["access_token"])
    )
    assert signed_out.status_code == 204
    assert (await client.post("/logout", headers=bearer(laptop["access_token"]))).status_code == 204

    events = await events_after(client, cursor)
    expires = lifetime(auth_settings, clock.now)
    assert without_ids(events) == [
        {"kind": "session", "sid": phone["session_id"], "expires_at": expires},
        {"kind": "session", "sid": laptop["session_id"], "expires_at": expires},
    ]
    assert events[0]["id"] < events[1]["id"]


async def test_logout_everywhere_feeds_a_user_cut_off(
    client: httpx.AsyncClient, clock: MovableClock, auth_settings: Settings
) -> None:
    _, user_id, tokens = await new_user(client)
    cursor = await caught_up(client)
    clock.advance(0.25)  # within a second: the cut-off is the next whole second

    assert (await client.post("/logout/all", headers=bearer(tokens["access_token"]))).is_success

    assert without_ids(await events_after(client, cursor)) == [
        {
            "kind": "user",
            "sub": user_id,
            "not_before": cut_off(clock.now),
            "expires_at": lifetime(auth_settings, clock.now),
        }
    ]


async def test_refresh_token_reuse_feeds_its_session(
    client: httpx.AsyncClient, clock: MovableClock, auth_settings: Settings
) -> None:
    _, _, tokens = await new_user(client)
    assert (await refresh(client, tokens["refresh_token"])).status_code == 200
    cursor = await caught_up(client)
    clock.advance(auth_settings.refresh_reuse_grace + 1)

    replayed = await refresh(client, tokens["refresh_token"])

    assert replayed.json()["error"] == "invalid_grant"
    assert without_ids(await events_after(client, cursor)) == [
        {
            "kind": "session",
            "sid": tokens["session_id"],
            "expires_at": lifetime(auth_settings, clock.now),
        }
    ]


async def test_disable_and_role_change_feed_user_cut_offs(
    client: httpx.AsyncClient, clock: MovableClock, services: Services
) -> None:
    admin_email = new_email("admin")
    await accounts.signup(services, admin_email, PASSWORD, roles=["admin"])
    as_admin = bearer((await login(client, admin_email))["access_token"])
    _, user_id, _ = await new_user(client)
    cursor = await caught_up(client)

    demoted = await client.put(
        f"/admin/users/{user_id}/roles", json={"roles": ["viewer"]}, headers=as_admin
    )
    assert demoted.status_code == 200
    demoted_at = clock.now
    clock.advance(5)
    assert (await client.post(f"/admin/users/{user_id}/disable", headers=as_admin)).is_success
    disabled_at = clock.now
    # Enabling again revokes nothing: nothing is fed.
    assert (await client.post(f"/admin/users/{user_id}/enable", headers=as_admin)).is_success

    settings = services.settings
    assert without_ids(await events_after(client, cursor)) == [
        {
            "kind": "user",
            "sub": user_id,
            "not_before": cut_off(demoted_at),
            "expires_at": lifetime(settings, demoted_at),
        },
        {
            "kind": "user",
            "sub": user_id,
            "not_before": cut_off(disabled_at),
            "expires_at": lifetime(settings, disabled_at),
        },
    ]


async def test_password_change_feeds_a_user_cut_off(
    client: httpx.AsyncClient, clock: MovableClock, auth_settings: Settings
) -> None:
    _, user_id, tokens = await new_user(client)
    cursor = await caught_up(client)

    changed = await client.post(
        "/me/password",
        json={"current_password": PASSWORD, "new_password": "a longer passphrase for 2030"},
        headers=bearer(tokens["access_token"]),
    )

    assert changed.status_code == 204, changed.text
    assert without_ids(await events_after(client, cursor)) == [
        {
            "kind": "user",
            "sub": user_id,
            "not_before": cut_off(clock.now),
            "expires_at": lifetime(auth_settings, clock.now),
        }
    ]


async def test_rfc7009_revocation_feeds_a_session_or_a_token_id(
    client: httpx.AsyncClient, clock: MovableClock, auth_settings: Settings
) -> None:
    email, _, first = await new_user(client)
    second = await login(client, email)
    cursor = await caught_up(client)

    by_refresh = await client.post("/revoke", data={"token": first["refresh_token"]})
    by_access = await client.post(
        "/revoke", data={"token": second["access_token"], "token_type_hint": "access_token"}
    )

    assert (by_refresh.status_code, by_access.status_code) == (200, 200)
    exp = jose_part(second["access_token"], 1)["exp"]
    assert without_ids(await events_after(client, cursor)) == [
        {
            "kind": "session",
            "sid": first["session_id"],
            "expires_at": lifetime(auth_settings, clock.now),
        },
        {"kind": "jti", "jti": jose_part(second["access_token"], 1)["jti"], "expires_at": exp + 60},
    ]


async def test_key_revocation_feeds_the_key(
    client: httpx.AsyncClient, clock: MovableClock, services: Services
) -> None:
    old = (await services.keys.signing_key()).kid
    cursor = await caught_up(client)

    await services.keys.revoke(old)

    assert without_ids(await events_after(client, cursor)) == [
        {"kind": "key", "kid": old, "expires_at": lifetime(services.settings, clock.now)}
    ]

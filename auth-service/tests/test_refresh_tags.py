"""A refresh token carries its session and its place in the lineage under an HMAC tag, so a dead
token is recognised (and revokes its session) even after its row was pruned, whatever the thief
did; a forged or tampered token names nothing and revokes nothing; a legacy token (43 random
characters, from before the tags) still refreshes through its stored hash.

In-process: the real app over ASGI, a real SQLite file, the clock moved by the test.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import httpx
import pytest
from refresh_helpers import (
    refresh,
    refused,
    reuse_events,
    sign_in,
)
from sqlalchemy import select, update

from auth_service.keys import load_kek
from auth_service.models import RefreshToken, RevocationEvent
from auth_service.models import Session as DeviceSession
from auth_service.state import Services
from auth_service.tokens import (
    InvalidRefreshToken,
    derive_refresh_key,
    hash_refresh_token,
    new_refresh_token,
    refresh_token_place,
)

NOT_VALID = {"error": "invalid_grant", "error_description": "The refresh token is not valid."}


async def stored_hashes(services: Services, session_id: str) -> set[str]:
    async with services.sessions() as db:
        rows = await db.scalars(
            select(RefreshToken.token_hash).where(RefreshToken.session_id == session_id)
        )
        return set(rows)


async def revoked_reason(services: Services, session_id: str) -> str | None:
    async with services.sessions() as db:
        session = await db.get(DeviceSession, session_id)
        assert session is not None
        return session.revoked_reason if session.revoked_at is not None else None


async def assert_revoked_for_reuse(
    services: Services, client: httpx.AsyncClient, tokens: dict[str, Any]
) -> None:
    """The session is revoked, with its security event and its revocation event for the edges."""
    session_id = tokens["session_id"]
    assert await revoked_reason(services, session_id) == "refresh_reuse"
    async with services.sessions() as db:
        events = await db.scalars(
            select(RevocationEvent).where(
                RevocationEvent.kind == "session", RevocationEvent.value == session_id
            )
        )
        assert len(list(events)) == 1
    assert await reuse_events(services, session_id) == 1
    me = await client.get("/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 401
    assert refused(await refresh(client, tokens["refresh_token"]))


async def assert_untouched(services: Services, client: httpx.AsyncClient, session_id: str) -> None:
    assert await revoked_reason(services, session_id) is None
    assert await reuse_events(services, session_id) == 0


async def rotate(
    client: httpx.AsyncClient, clock: Any, token: str, steps: int, seconds: float = 1
) -> dict[str, Any]:
    """``steps`` refreshes along one lineage, ``seconds`` apart: the last answer."""
    answer: dict[str, Any] = {}
    for _ in range(steps):
        clock.advance(seconds)
        response = await refresh(client, token)
        assert response.status_code == 200, response.text
        answer = response.json()
        token = answer["refresh_token"]
    return answer


# --- the red team's attacks --------------------------------------------------------------------


async def test_a_stolen_token_pruned_by_the_thiefs_rotations_still_revokes_the_session(
    client: httpx.AsyncClient, services: Services, clock: Any
) -> None:
    owner = await sign_in(client)
    stolen = owner["refresh_token"]
    thief = await rotate(client, clock, stolen, 22)  # 22 rotations: beyond the history of 20
    assert hash_refresh_token(stolen) not in await stored_hashes(services, owner["session_id"])

    clock.advance(60)
    answer = await refresh(client, stolen)  # the owner's copy comes back
    assert answer.json() == {
        "error": "invalid_grant",
        "error_description": "The refresh token was already used; the session is revoked.",
    }
    await assert_revoked_for_reuse(services, client, thief)  # the thief loses the session


async def test_an_unused_successor_pruned_by_retries_inside_the_window_still_revokes(
    client: httpx.AsyncClient, services: Services, clock: Any
) -> None:
    stolen = await sign_in(client)
    owner = (await refresh(client, stolen["refresh_token"])).json()  # the owner's live token
    thief: dict[str, Any] = {}
    for _ in range(20):  # honest-looking retries of the stolen token, all inside the 10 s window
        clock.advance(0.25)
        response = await refresh(client, stolen["refresh_token"])
        assert response.status_code == 200, response.text
        thief = response.json()
    thief = await rotate(client, clock, thief["refresh_token"], 1, seconds=0.25)
    hashes = await stored_hashes(services, owner["session_id"])
    assert hash_refresh_token(owner["refresh_token"]) not in hashes  # the owner's link: pruned
    assert await reuse_events(services, owner["session_id"]) == 0

    clock.advance(60)
    assert refused(await refresh(client, owner["refresh_token"]))
    await assert_revoked_for_reuse(services, client, thief)


async def test_a_pruned_retry_of_the_stolen_token_itself_revokes(
    client: httpx.AsyncClient, services: Services, clock: Any
) -> None:
    stolen = await sign_in(client)
    thief = await rotate(client, clock, stolen["refresh_token"], 21)
    assert hash_refresh_token(stolen["refresh_token"]) not in await stored_hashes(
        services, stolen["session_id"]
    )
    assert refused(await refresh(client, stolen["refresh_token"]))
    await assert_revoked_for_reuse(services, client, thief)


# --- forgeries name nothing --------------------------------------------------------------------


def _parts(token: str) -> list[str]:
    parts = token.split(".")
    assert len(parts) == 4
    return parts


def _other_b64(value: str) -> str:
    """A different 43-character base64url string."""
    flipped = "A" if value[0] != "A" else "B"
    return flipped + value[1:]


async def test_a_forged_tag_or_a_tampered_place_revokes_nothing(
    client: httpx.AsyncClient, services: Services, clock: Any
) -> None:
    ann = await sign_in(client)
    bob = await sign_in(client, "bob@example.com")
    dead = ann["refresh_token"]
    ann_now = await rotate(client, clock, dead, 22)  # ``dead``: seq 0, rotated and pruned
    session_id, seq, nonce, tag = _parts(dead)
    bob_session = _parts(bob["refresh_token"])[0]
    forgeries = [
        f"{session_id}.{seq}.{nonce}.{_other_b64(tag)}",  # a forged tag
        f"{session_id}.5.{nonce}.{tag}",  # a tampered seq
        f"{session_id}.00.{nonce}.{tag}",  # the same seq, spelt otherwise
        f"{bob_session}.{seq}.{nonce}.{tag}",  # a tampered session id
        f"{bob_session}.0.{secrets.token_urlsafe(32)}.{secrets.token_urlsafe(32)}",  # made up
        f"{session_id}.{seq}.{nonce}",  # malformed: no tag
        f"{session_id}.{seq}.{nonce}.{tag}.x",  # malformed: one part too many
        f"{session_id}.-1.{nonce}.{tag}",
        f"{session_id}.{seq}.{nonce}.{tag[:-1]}",
    ]
    for forged in forgeries:
        clock.advance(1)
        assert (await refresh(client, forged)).json() == NOT_VALID, forged
    for tokens in (ann_now, bob):
        await assert_untouched(services, client, tokens["session_id"])
        assert (await refresh(client, tokens["refresh_token"])).status_code == 200


async def test_a_tagged_token_ahead_of_the_live_one_is_not_valid(
    client: httpx.AsyncClient, services: Services
) -> None:
    """A good tag alone revokes only for a place behind the live token (never issued otherwise)."""
    tokens = await sign_in(client)
    for seq in (0, 1, 99):  # 0: the live token's place, with another nonce
        ahead = new_refresh_token(services.refresh_key, tokens["session_id"], seq)
        assert (await refresh(client, ahead)).json() == NOT_VALID
    await assert_untouched(services, client, tokens["session_id"])
    assert (await refresh(client, tokens["refresh_token"])).status_code == 200


# --- legacy tokens -----------------------------------------------------------------------------


async def legacy_live_token(services: Services, session_id: str) -> str:
    """Make the session's live token one of the old format (43 random characters, no tag)."""
    legacy = secrets.token_urlsafe(32)
    async with services.sessions() as db:
        await db.execute(
            update(RefreshToken)
            .where(
                RefreshToken.session_id == session_id,
                RefreshToken.rotated_at.is_(None),
                RefreshToken.superseded_at.is_(None),
            )
            .values(token_hash=hash_refresh_token(legacy))
        )
        await db.commit()
    return legacy


async def test_a_legacy_token_still_refreshes_into_a_tagged_one_and_reveals_reuse(
    client: httpx.AsyncClient, services: Services, clock: Any
) -> None:
    tokens = await sign_in(client)
    legacy = await legacy_live_token(services, tokens["session_id"])
    assert len(legacy) == 43
    assert "." not in legacy
    rotated = await refresh(client, legacy)
    assert rotated.status_code == 200, rotated.text
    assert refresh_token_place(services.refresh_key, rotated.json()["refresh_token"]) is not None
    clock.advance(60)
    assert refused(await refresh(client, legacy))  # its row is kept: a dead legacy token revokes
    await assert_revoked_for_reuse(services, client, rotated.json())


# --- the format --------------------------------------------------------------------------------


def test_the_token_is_url_safe_short_and_its_key_is_derived_for_this_use_only(
    services: Services,
) -> None:
    kek = load_kek(services.settings)
    key = derive_refresh_key(kek)
    assert key == services.refresh_key
    assert len(key) == 32
    assert key != kek
    assert services.refresh_key.hex() not in repr(services)
    token = new_refresh_token(key, "ses_" + secrets.token_urlsafe(16), 4_000_000_000)
    assert len(token) <= 200
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", token)
    place = refresh_token_place(key, token)
    assert place is not None
    assert place.seq == 4_000_000_000
    with pytest.raises(InvalidRefreshToken):
        refresh_token_place(derive_refresh_key(bytes(reversed(kek))), token)  # another key
    assert refresh_token_place(key, secrets.token_urlsafe(32)) is None  # legacy: no place

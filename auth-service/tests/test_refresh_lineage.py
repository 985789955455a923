"""A session's refresh tokens form one lineage with exactly one live token: rotation, honest
retries inside the grace window, reuse detection, and the bounded history kept for it.

In-process: the real app over ASGI, a real SQLite file, the clock moved by the test.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from refresh_helpers import (
    assert_revoked_for_reuse,
    lineage,
    live,
    refresh,
    refused,
    reuse_events,
    sign_in,
)

from auth_service.state import Services
from auth_service.tokens import hash_refresh_token

# --- rotation ----------------------------------------------------------------------------------


async def test_rotation_names_the_successor_and_leaves_one_live_token(
    client: httpx.AsyncClient, services: Services
) -> None:
    first = await sign_in(client)
    second = (await refresh(client, first["refresh_token"])).json()
    rows = await lineage(services, first["session_id"])
    assert [row.seq for row in rows] == [0, 1]
    assert rows[0].rotated_at is not None
    assert rows[0].replaced_by == rows[1].id
    assert live(rows) == [rows[1]]
    assert rows[1].token_hash == hash_refresh_token(second["refresh_token"])


# --- honest retries and theft ------------------------------------------------------------------


@pytest.mark.parametrize("loser", ["first answered", "last superseded"])
async def test_twenty_concurrent_refreshes_leave_exactly_one_usable_lineage(
    client: httpx.AsyncClient, services: Services, loser: str
) -> None:
    tokens = await sign_in(client)
    responses = await asyncio.gather(*(refresh(client, tokens["refresh_token"]) for _ in range(20)))
    assert [r.status_code for r in responses] == [200] * 20
    returned = [r.json()["refresh_token"] for r in responses]
    assert len(set(returned)) == 20

    rows = await lineage(services, tokens["session_id"])
    [leaf] = live(rows)  # one live token in the session...
    by_hash = {hash_refresh_token(token): token for token in returned}
    survivor = by_hash[leaf.token_hash]  # ...and it is one of the twenty answers
    others = [token for token in returned if token != survivor]
    dead = {row.token_hash for row in rows if row.superseded_at is not None}
    assert {hash_refresh_token(token) for token in others} == dead  # the 19 others: superseded
    assert [row.seq for row in rows] == list(range(21))

    if loser == "first answered":
        stale = others[0]
    else:  # the token the survivor replaced: the newest of the dead
        stale = next(t for t in others if hash_refresh_token(t) == rows[-2].token_hash)
    onward = await refresh(client, survivor)
    assert onward.status_code == 200  # the one lineage goes on...
    assert refused(await refresh(client, stale))  # ...until a superseded token shows up
    await assert_revoked_for_reuse(services, client, onward.json())
    assert refused(await refresh(client, onward.json()["refresh_token"]))


@pytest.mark.parametrize("first_to_refresh", ["owner", "thief"])
async def test_a_replay_inside_the_window_then_both_parties_refreshing_revokes_the_session(
    client: httpx.AsyncClient, services: Services, clock: Any, first_to_refresh: str
) -> None:
    stolen = await sign_in(client)
    owner = (await refresh(client, stolen["refresh_token"])).json()
    clock.advance(3)  # inside the 10 s window
    thief_response = await refresh(client, stolen["refresh_token"])
    assert thief_response.status_code == 200  # indistinguishable from an honest retry, so far
    thief = thief_response.json()
    clock.advance(60)

    if first_to_refresh == "owner":
        assert refused(await refresh(client, owner["refresh_token"]))
        assert refused(await refresh(client, thief["refresh_token"]))
    else:
        onward = await refresh(client, thief["refresh_token"])
        assert onward.status_code == 200
        assert refused(await refresh(client, owner["refresh_token"]))
        assert refused(await refresh(client, onward.json()["refresh_token"]))
    await assert_revoked_for_reuse(services, client, stolen)


async def test_a_retry_after_the_successor_was_used_is_reuse_even_inside_the_window(
    client: httpx.AsyncClient, services: Services, clock: Any
) -> None:
    tokens = await sign_in(client)
    successor = (await refresh(client, tokens["refresh_token"])).json()
    assert (await refresh(client, successor["refresh_token"])).status_code == 200
    clock.advance(2)
    assert refused(await refresh(client, tokens["refresh_token"]))
    await assert_revoked_for_reuse(services, client, tokens)


async def test_an_honest_retry_gets_a_new_pair_and_only_the_newest_answer_lives(
    client: httpx.AsyncClient, services: Services, clock: Any
) -> None:
    tokens = await sign_in(client)
    lost = (await refresh(client, tokens["refresh_token"])).json()  # the answer never arrived
    clock.advance(5)
    retried = await refresh(client, tokens["refresh_token"])
    assert retried.status_code == 200
    assert retried.json()["session_id"] == tokens["session_id"]
    rows = await lineage(services, tokens["session_id"])
    assert [row.token_hash for row in live(rows)] == [
        hash_refresh_token(retried.json()["refresh_token"])
    ]
    assert rows[0].replaced_by == live(rows)[0].id
    assert await reuse_events(services, tokens["session_id"]) == 0
    # A client that kept the older answer of the two loses the session.
    assert refused(await refresh(client, lost["refresh_token"]))
    await assert_revoked_for_reuse(services, client, tokens)


async def test_a_retry_after_the_window_is_reuse(
    client: httpx.AsyncClient, services: Services, clock: Any
) -> None:
    tokens = await sign_in(client)
    await refresh(client, tokens["refresh_token"])
    clock.advance(10.5)
    assert refused(await refresh(client, tokens["refresh_token"]))
    await assert_revoked_for_reuse(services, client, tokens)

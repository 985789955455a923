"""A session keeps only its newest rotated refresh tokens (``refresh_history``): storage stays
bounded, yet an older token is still recognised by its tag and revokes the session; only a legacy
token (from before the tags, known by its hash alone) older than that is simply unknown.

In-process: the real app over ASGI, a real SQLite file, the clock moved by the test.
"""

from __future__ import annotations

import secrets
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
from sqlalchemy import update

from auth_service.config import Settings
from auth_service.models import RefreshToken
from auth_service.state import Services
from auth_service.tokens import hash_refresh_token

# --- the history ---------------------------------------------------------------------------------


@pytest.fixture
def auth_settings(auth_settings: Settings) -> Settings:
    return auth_settings.model_copy(update={"refresh_history": 3})


async def walk(
    client: httpx.AsyncClient, clock: Any, token: str, steps: int
) -> list[dict[str, Any]]:
    """``steps`` refreshes a second apart: the answers, in order."""
    answers = []
    for _ in range(steps):
        clock.advance(1)
        response = await refresh(client, token)
        assert response.status_code == 200, response.text
        answers.append(response.json())
        token = answers[-1]["refresh_token"]
    return answers


async def test_a_session_keeps_only_its_newest_rotated_tokens(
    client: httpx.AsyncClient, services: Services, clock: Any
) -> None:
    tokens = await sign_in(client)
    answers = await walk(client, clock, tokens["refresh_token"], 30)
    rows = await lineage(services, tokens["session_id"])
    assert [row.seq for row in rows] == [27, 28, 29, 30]  # three rotated, one live
    assert live(rows) == rows[-1:]
    assert rows[-1].token_hash == hash_refresh_token(answers[-1]["refresh_token"])


async def test_a_token_older_than_the_history_is_still_recognised_and_revokes(
    client: httpx.AsyncClient, services: Services, clock: Any
) -> None:
    tokens = await sign_in(client)
    answers = await walk(client, clock, tokens["refresh_token"], 5)
    clock.advance(60)
    pruned = answers[0]["refresh_token"]  # seq 1; seqs 2-4 are kept
    rows = await lineage(services, tokens["session_id"])
    assert hash_refresh_token(pruned) not in {row.token_hash for row in rows}
    assert refused(await refresh(client, pruned))
    await assert_revoked_for_reuse(services, client, answers[-1])


async def test_a_legacy_token_older_than_the_history_is_refused_without_revoking(
    client: httpx.AsyncClient, services: Services, clock: Any
) -> None:
    tokens = await sign_in(client)
    legacy = secrets.token_urlsafe(32)  # the format before the tags: 43 random characters
    async with services.sessions() as db:
        await db.execute(
            update(RefreshToken)
            .where(RefreshToken.session_id == tokens["session_id"])
            .values(token_hash=hash_refresh_token(legacy))
        )
        await db.commit()
    answers = await walk(client, clock, legacy, 5)
    clock.advance(60)
    forgotten = await refresh(client, legacy)  # seq 0; seqs 2-4 are kept
    assert forgotten.json() == {
        "error": "invalid_grant",
        "error_description": "The refresh token is not valid.",
    }
    assert await reuse_events(services, tokens["session_id"]) == 0
    assert (await refresh(client, answers[-1]["refresh_token"])).status_code == 200


async def test_a_token_within_the_history_still_reveals_reuse(
    client: httpx.AsyncClient, services: Services, clock: Any
) -> None:
    tokens = await sign_in(client)
    answers = await walk(client, clock, tokens["refresh_token"], 5)
    clock.advance(60)
    assert refused(await refresh(client, answers[1]["refresh_token"]))  # seq 2: kept
    await assert_revoked_for_reuse(services, client, answers[-1])

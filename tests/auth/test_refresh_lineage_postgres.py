"""Refresh-token lineage under real concurrency on PostgreSQL (and the same on SQLite): the app
in-process over ASGI, its requests racing on a pool of real connections.

A session has exactly one live refresh token: twenty concurrent uses of one token leave one
usable lineage, and honest retries racing the successor's use end in one revocation, never two
live branches. Migration 0003's data steps run here on PostgreSQL too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from fastapi import FastAPI
from sqlalchemy import Connection, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from auth_service.app import create_app, running
from auth_service.migrate import MIGRATIONS
from auth_service.models import RefreshToken, SecurityEvent
from auth_service.models import Session as DeviceSession
from auth_service.state import Services
from auth_service.tokens import hash_refresh_token
from gatepass.db import alembic_config, create_engine
from tests.support.inprocess import BASE_URL, auth_settings

PASSWORD = "correct horse battery staple 42"
CONCURRENT = 20


@dataclass
class Auth:
    app: FastAPI
    svc: Services

    def client(self) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app)
        return httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=60)


@pytest.fixture
async def auth(tmp_path: Path, database_url: str | None) -> AsyncIterator[Auth]:
    settings = auth_settings(
        tmp_path,
        database_url,
        refresh_reuse_grace=300,  # real time here: the races end long before the window does
    )
    app = create_app(settings)
    async with running(settings, background=False) as svc:
        app.state.services = svc
        yield Auth(app, svc)


async def sign_in(client: httpx.AsyncClient) -> dict[str, Any]:
    signed_up = await client.post(
        "/signup", json={"email": "ann@example.com", "password": PASSWORD}
    )
    assert signed_up.status_code == 201, signed_up.text
    login = await client.post("/login", json={"email": "ann@example.com", "password": PASSWORD})
    assert login.status_code == 200, login.text
    body: dict[str, Any] = login.json()
    return body


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/token", data={"grant_type": "refresh_token", "refresh_token": token})


async def live_hashes(svc: Services, session_id: str) -> list[str]:
    async with svc.sessions() as db:
        rows = await db.scalars(
            select(RefreshToken.token_hash).where(
                RefreshToken.session_id == session_id,
                RefreshToken.rotated_at.is_(None),
                RefreshToken.superseded_at.is_(None),
            )
        )
        return list(rows)


async def reuse_events(svc: Services) -> int:
    async with svc.sessions() as db:
        count = await db.scalar(
            select(func.count())
            .select_from(SecurityEvent)
            .where(SecurityEvent.kind == "refresh_token_reuse")
        )
        return int(count or 0)


async def session_revoked(svc: Services, session_id: str) -> bool:
    async with svc.sessions() as db:
        session = await db.get(DeviceSession, session_id)
        assert session is not None
        return session.revoked_at is not None


def refused(response: httpx.Response) -> bool:
    return response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_twenty_concurrent_refreshes_leave_exactly_one_usable_lineage(auth: Auth) -> None:
    async with auth.client() as client:
        tokens = await sign_in(client)
        responses = await asyncio.gather(
            *(refresh(client, tokens["refresh_token"]) for _ in range(CONCURRENT))
        )
        assert [r.status_code for r in responses] == [200] * CONCURRENT
        returned = [r.json()["refresh_token"] for r in responses]
        [leaf] = await live_hashes(auth.svc, tokens["session_id"])
        [survivor] = [token for token in returned if hash_refresh_token(token) == leaf]
        others = [token for token in returned if token != survivor]
        assert len(others) == CONCURRENT - 1

        onward = await refresh(client, survivor)
        assert onward.status_code == 200
        assert not await session_revoked(auth.svc, tokens["session_id"])
        assert refused(await refresh(client, others[len(others) // 2]))
        assert await session_revoked(auth.svc, tokens["session_id"])
        assert await reuse_events(auth.svc) == 1
        assert refused(await refresh(client, onward.json()["refresh_token"]))


async def test_retries_racing_the_successors_use_end_in_one_revocation(auth: Auth) -> None:
    async with auth.client() as client:
        tokens = await sign_in(client)
        successor = (await refresh(client, tokens["refresh_token"])).json()["refresh_token"]
        racing = [tokens["refresh_token"], successor] * (CONCURRENT // 2)
        responses = await asyncio.gather(*(refresh(client, token) for token in racing))
        assert all(r.status_code == 200 or refused(r) for r in responses), [
            r.text for r in responses if r.status_code != 200
        ]
        # Whichever came second, a retry after the successor's use or a use of a superseded
        # successor, is reuse: the session ends revoked, once, and nothing it issued lives on.
        assert await session_revoked(auth.svc, tokens["session_id"])
        assert await reuse_events(auth.svc) == 1
        issued = [r.json()["refresh_token"] for r in responses if r.status_code == 200]
        for token in issued:
            assert refused(await refresh(client, token))


# --- migration 0003 on rows an older release wrote -----------------------------------------------


async def migrate(engine: AsyncEngine, revision: str) -> None:
    def run(connection: Connection) -> None:
        command.upgrade(alembic_config(MIGRATIONS, connection), revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


@pytest.fixture
async def engine(database_url: str | None, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = database_url or f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}"
    engine = create_engine(url)
    yield engine
    await engine.dispose()


async def test_migration_0003_keeps_the_newest_live_token_of_a_forked_session(
    engine: AsyncEngine,
) -> None:
    t0 = datetime(2030, 1, 1)  # naive UTC, as stored
    await migrate(engine, "0002")
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO users (id, email, password_hash, roles, disabled, created_at, "
                "updated_at) VALUES ('usr_1', 'a@example.com', 'x', '[]', false, :t, :t)"
            ),
            {"t": t0},
        )
        await conn.execute(
            text(
                "INSERT INTO sessions (id, user_id, client_id, created_at, last_used_at, "
                "expires_at) VALUES ('ses_1', 'usr_1', 'app', :t, :t, :t)"
            ),
            {"t": t0},
        )
        for token_id, created, rotated in [("r0", 0, 1), ("s1", 1, None), ("f", 2, None)]:
            await conn.execute(
                text(
                    "INSERT INTO refresh_tokens (id, session_id, token_hash, created_at, "
                    "rotated_at) VALUES (:id, 'ses_1', :hash, :created, :rotated)"
                ),
                {
                    "id": token_id,
                    "hash": token_id * 8,
                    "created": t0 + timedelta(seconds=created),
                    "rotated": None if rotated is None else t0 + timedelta(seconds=rotated),
                },
            )
    await migrate(engine, "head")
    async with engine.connect() as conn:
        result = await conn.execute(
            text("SELECT id, seq, superseded_at IS NOT NULL FROM refresh_tokens ORDER BY seq")
        )
        assert [tuple(row) for row in result] == [
            ("r0", 0, False),
            ("s1", 1, True),
            ("f", 2, False),
        ]

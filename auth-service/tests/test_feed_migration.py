"""Migration 0004 on events an older release wrote (SQLite): the table rebuilt AUTOINCREMENT with
its rows and ids kept, so a deleted newest id is never given again; a random epoch per database;
and the way back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from auth_service.migrate import MIGRATIONS
from gatepass.db import alembic_config, create_engine, sqlite_url

T0 = datetime(2030, 1, 1)  # naive UTC, as stored


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(sqlite_url(tmp_path, "auth"))
    yield engine
    await engine.dispose()


async def migrate(engine: AsyncEngine, revision: str, *, down: bool = False) -> None:
    def run(connection: Connection) -> None:
        config = alembic_config(MIGRATIONS, connection)
        (command.downgrade if down else command.upgrade)(config, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def add_event(engine: AsyncEngine, value: str) -> int:
    async with engine.begin() as conn:
        result = await conn.execute(
            text(
                "INSERT INTO revocation_events (kind, value, created_at, expires_at) "
                "VALUES ('jti', :value, :at, :at)"
            ),
            {"value": value, "at": T0},
        )
        return int(result.lastrowid)


async def events(engine: AsyncEngine) -> list[tuple[int, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT id, value FROM revocation_events ORDER BY id"))
        return [(int(row[0]), str(row[1])) for row in rows]


async def epoch(engine: AsyncEngine) -> str:
    async with engine.connect() as conn:
        return str((await conn.execute(text("SELECT epoch FROM revocation_feed"))).scalar_one())


async def test_events_keep_their_ids_and_ids_are_never_given_twice(engine: AsyncEngine) -> None:
    await migrate(engine, "0003")
    for value in ("a", "b", "c"):
        await add_event(engine, value)

    await migrate(engine, "head")

    assert await events(engine) == [(1, "a"), (2, "b"), (3, "c")]
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM revocation_events WHERE id = 3"))
    assert await add_event(engine, "d") == 4  # 3 was given once: never again
    assert len(await epoch(engine)) == 16

    await migrate(engine, "0003", down=True)
    assert await events(engine) == [(1, "a"), (2, "b"), (4, "d")]
    await migrate(engine, "head")
    assert await events(engine) == [(1, "a"), (2, "b"), (4, "d")]


async def test_each_database_gets_its_own_epoch(tmp_path: Path) -> None:
    epochs = set()
    for name in ("one", "two"):
        engine = create_engine(sqlite_url(tmp_path / name, "auth"))
        try:
            await migrate(engine, "head")
            epochs.add(await epoch(engine))
        finally:
            await engine.dispose()
    assert len(epochs) == 2

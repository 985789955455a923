"""Migration 0003 on data an older release wrote: refresh tokens numbered by creation, a session
forked by the old grace window left with its newest live token only, and the invariants held by
unique indexes from then on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError
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


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def insert(engine: AsyncEngine, table: str, **values: Any) -> None:
    names = ", ".join(values)
    params = ", ".join(f":{name}" for name in values)
    async with engine.begin() as conn:
        await conn.execute(text(f"INSERT INTO {table} ({names}) VALUES ({params})"), values)  # noqa: S608


async def legacy_data(engine: AsyncEngine) -> None:
    await insert(
        engine,
        "users",
        id="usr_1",
        email="ann@example.com",
        password_hash="x",
        roles="[]",
        disabled=False,
        created_at=at(0),
        updated_at=at(0),
    )
    for session in ("ses_forked", "ses_plain"):
        await insert(
            engine,
            "sessions",
            id=session,
            user_id="usr_1",
            client_id="app",
            created_at=at(0),
            last_used_at=at(0),
            expires_at=at(9999),
        )
    # ses_forked: r0 -> s1 -> s2 (live), and f (live), minted by a retry of r0 inside the window.
    tokens = [
        ("r0", "ses_forked", at(0), at(1)),
        ("s1", "ses_forked", at(1), at(3)),
        ("f", "ses_forked", at(2), None),
        ("s2", "ses_forked", at(3), None),
        ("p0", "ses_plain", at(0), None),
    ]
    for token_id, session, created, rotated in tokens:
        await insert(
            engine,
            "refresh_tokens",
            id=token_id,
            session_id=session,
            token_hash=token_id * 8,
            created_at=created,
            rotated_at=rotated,
        )


async def rows(engine: AsyncEngine) -> dict[str, tuple[Any, ...]]:
    async with engine.connect() as conn:
        result = await conn.execute(
            text("SELECT id, seq, superseded_at IS NOT NULL FROM refresh_tokens")
        )
        return {row[0]: tuple(row[1:]) for row in result}


async def test_0003_numbers_tokens_and_keeps_one_live_token_per_session(
    engine: AsyncEngine,
) -> None:
    await migrate(engine, "0002")
    await legacy_data(engine)
    await migrate(engine, "head")
    assert await rows(engine) == {
        "r0": (0, False),
        "s1": (1, False),
        "f": (2, True),  # the older of the two live forks dies
        "s2": (3, False),
        "p0": (0, False),
    }
    with pytest.raises(IntegrityError):  # a second live token in a session
        await insert(
            engine,
            "refresh_tokens",
            id="p1",
            session_id="ses_plain",
            token_hash="p1" * 8,
            seq=1,
            created_at=at(5),
        )
    with pytest.raises(IntegrityError):  # a number taken twice in a session
        await insert(
            engine,
            "refresh_tokens",
            id="p1",
            session_id="ses_plain",
            token_hash="p1" * 8,
            seq=0,
            created_at=at(5),
            rotated_at=at(5),
        )


async def test_0003_downgrades(engine: AsyncEngine) -> None:
    await migrate(engine, "head")
    await migrate(engine, "0002", down=True)
    async with engine.connect() as conn:
        columns = await conn.execute(text("SELECT name FROM pragma_table_info('refresh_tokens')"))
        assert {row[0] for row in columns} == {
            "id",
            "session_id",
            "token_hash",
            "created_at",
            "rotated_at",
        }

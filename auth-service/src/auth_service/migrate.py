"""The auth service's schema: its Alembic migrations, applied with :mod:`gatepass.db`."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from gatepass import db

MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_ID = 0x6761746570617373  # "gatepass": the auth service's advisory lock for migrations


async def upgrade(engine: AsyncEngine) -> None:
    await db.upgrade(engine, MIGRATIONS, lock_id=_LOCK_ID)


async def current_revision(engine: AsyncEngine) -> str | None:
    return await db.current_revision(engine)

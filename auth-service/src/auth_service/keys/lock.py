"""The key-rotation lock: one row of ``locks`` that serialises key changes across replicas.

Every change to the keys runs in a transaction whose first statement updates this row: on
PostgreSQL that takes a row lock the other replicas wait on, on SQLite it takes the write lock.
The row also says who last held it and when (for an operator looking at a stuck rotation).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import CursorResult, Insert, update
from sqlalchemy import insert as sql_insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.models import Lock

LOCK_NAME: Final = "key-rotation"


async def take_rotation_lock(session: AsyncSession, holder: str, now: datetime) -> None:
    """Call first in the transaction: the lock is held until it ends."""
    stmt = update(Lock).where(Lock.name == LOCK_NAME).values(holder=holder, taken_at=now)
    result = cast("CursorResult[Any]", await session.execute(stmt))
    if result.rowcount == 0:
        # The migration inserts the row; a schema made another way may lack it.
        await session.execute(_insert_lock_row(session))
        await session.execute(stmt)


def _insert_lock_row(session: AsyncSession) -> Insert:
    """Insert the lock row unless another replica just did (ON CONFLICT DO NOTHING)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(Lock).values(name=LOCK_NAME).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(Lock).values(name=LOCK_NAME).on_conflict_do_nothing()
    return sql_insert(Lock).values(name=LOCK_NAME)

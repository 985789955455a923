"""Databases for gatepass services: SQLite embedded by default, PostgreSQL by URL, same code.

Install with the ``db`` extra (``gatepass[db]``). Each service owns its own database and its own
Alembic migrations; this module holds what they all need:

- :func:`create_engine`: an async engine. For SQLite: WAL, foreign keys, one pooled connection and
  ``BEGIN IMMEDIATE`` (see :func:`_sqlite_begin_immediate`); for PostgreSQL: a pre-pinged pool.
- :class:`UTCDateTime`: timezone-aware UTC datetimes on every backend.
- :func:`upgrade`: Alembic ``upgrade head`` on the service's own engine, one replica at a time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, DateTime, event, text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.types import TypeDecorator

__all__ = [
    "UTCDateTime",
    "create_engine",
    "create_sessionmaker",
    "current_revision",
    "sqlite_url",
    "upgrade",
]


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def sqlite_url(data_dir: Path, name: str) -> str:
    """The default database of a service: ``<data_dir>/<name>.db``."""
    return f"sqlite+aiosqlite:///{(data_dir / f'{name}.db').resolve()}"


def create_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # One connection: SQLite has one writer at a time, and transactions queued on the pool
        # (FIFO, in the event loop) beat writers polling for the file lock in busy_timeout sleeps.
        engine = create_async_engine(
            url, connect_args={"timeout": 30}, pool_size=1, max_overflow=0, pool_timeout=60
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate)
        return engine
    return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide when a transaction begins (see below).
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin_immediate(conn: Connection) -> None:
    """Take SQLite's write lock when a transaction begins, not at its first write.

    A transaction that reads and then writes would otherwise fail at once with "database is
    locked" when another process (the operator's CLI, say) committed in between: an upgrade from a
    read snapshot cannot wait. Beginning IMMEDIATE makes writers queue on ``busy_timeout`` instead.
    """
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(migrations: Path, connection: Connection | None = None) -> Config:
    """An Alembic config for ``migrations`` (whose env.py takes ``attributes["connection"]``)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


async def upgrade(engine: AsyncEngine, migrations: Path, *, lock_id: int) -> None:
    """Apply every migration. Replicas starting together on one PostgreSQL take the advisory lock
    ``lock_id`` (one per service), so exactly one of them migrates."""

    def run(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id})
        command.upgrade(alembic_config(migrations, connection), "head")

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def current_revision(engine: AsyncEngine) -> str | None:
    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(read)

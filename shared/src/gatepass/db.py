"""Databases for gatepass services: SQLite embedded by default, PostgreSQL by URL, same code.

Install with the ``db`` extra (``gatepass[db]``). Each service owns its own database and its own
Alembic migrations; this module holds what they all need:

- :func:`create_engine`: an async engine. For SQLite: WAL, foreign keys, one pooled connection and
  ``BEGIN IMMEDIATE`` (see :func:`_sqlite_begin_immediate`), the data folder made 0700 and the
  database files 0600 (:func:`private_dir`, :func:`private_file`); for PostgreSQL: a pre-pinged
  pool. On both, no error message ever carries a value: bound parameters are hidden, and what
  PostgreSQL and asyncpg quote (the failing row, an argument) is dropped (:func:`_forget_values`).
- :class:`UTCDateTime`: timezone-aware UTC datetimes on every backend.
- :func:`upgrade`: Alembic ``upgrade head`` on the service's own engine, one replica at a time.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, DateTime, event, text
from sqlalchemy.engine import Dialect, ExceptionContext, make_url
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
    "private_dir",
    "private_file",
    "sqlite_url",
    "upgrade",
]

log = logging.getLogger("gatepass.db")

PRIVATE_DIR_MODE: Final = 0o700
PRIVATE_FILE_MODE: Final = 0o600
# Files SQLite keeps beside a database (it creates them with the database file's own mode).
SQLITE_COMPANIONS: Final = ("-wal", "-shm", "-journal")


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
    """An engine for ``url``; for a SQLite file, its folder and files made private first."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            _private_sqlite_files(Path(database))
        # One connection: SQLite has one writer at a time, and transactions queued on the pool
        # (FIFO, in the event loop) beat writers polling for the file lock in busy_timeout sleeps.
        engine = create_async_engine(
            url,
            connect_args={"timeout": 30},
            pool_size=1,
            max_overflow=0,
            pool_timeout=60,
            hide_parameters=True,
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate)
    else:
        engine = create_async_engine(
            url, pool_pre_ping=True, pool_size=10, max_overflow=10, hide_parameters=True
        )
    event.listen(engine.sync_engine, "handle_error", _forget_values)
    return engine


def _forget_values(context: ExceptionContext) -> None:
    """Take the values out of a database error before anyone logs it.

    ``hide_parameters`` keeps SQLAlchemy from listing them, but the driver quotes some itself:
    a PostgreSQL constraint error's ``DETAIL`` ("Failing row contains (usr_…, bob@example.com,
    $argon2id$…)", "Key (email)=(…) already exists"), which asyncpg prints in its exception's
    message and so in every logged traceback; and asyncpg's "invalid input for query argument $2:
    <the value> (…)". The SQLSTATE, the statement, constraint and table names stay.
    """
    for error in _chain(context.sqlalchemy_exception, context.original_exception):
        if isinstance(getattr(error, "detail", None), str):
            error.detail = None  # type: ignore[attr-defined]
        if error.args and isinstance(error.args[0], str):
            said = _QUOTED_ARGUMENT.sub(r"\1 (value hidden)", error.args[0])
            if said != error.args[0]:
                error.args = (said, *error.args[1:])


_QUOTED_ARGUMENT: Final = re.compile(r"(invalid input for query argument \$\d+):.*", re.DOTALL)


def _chain(*errors: BaseException | None) -> list[BaseException]:
    """The errors, with their causes and contexts, each once."""
    found: list[BaseException] = []
    pending = [error for error in errors if error is not None]
    while pending:
        error = pending.pop()
        if any(error is seen for seen in found):
            continue
        found.append(error)
        pending.extend(e for e in (error.__cause__, error.__context__) if e is not None)
    return found


def private_dir(path: Path) -> None:
    """Make ``path`` (and any missing parent) if it does not exist, the folder itself 0700.

    An existing folder is left as it is: it may be shared on purpose (a volume's mount point, the
    working directory), and its files are made private one by one (:func:`private_file`).
    """
    if path.is_dir():
        return
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, PRIVATE_DIR_MODE)  # whatever the umask


def private_file(path: Path, *, create: bool = True) -> None:
    """Make ``path`` 0600: created empty that way if missing (with ``create``), else tightened.

    Never truncates. A file this user does not own cannot be tightened: said in the log.
    """
    flags = os.O_RDONLY | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, PRIVATE_FILE_MODE)
    except FileNotFoundError:
        if create:
            raise
        return
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) & ~PRIVATE_FILE_MODE:
            os.fchmod(fd, PRIVATE_FILE_MODE)
    except PermissionError:
        log.warning("cannot make %s readable by its owner only (not ours?)", path)
    finally:
        os.close(fd)


def _private_sqlite_files(database: Path) -> None:
    """The folder 0700 if we make it; the database 0600 before SQLite opens it, so the WAL and
    shared-memory files SQLite makes beside it get 0600 too (it copies the database's mode); and
    files an older version left readable by others tightened."""
    private_dir(database.parent)
    private_file(database)
    for suffix in SQLITE_COMPANIONS:
        private_file(database.with_name(database.name + suffix), create=False)


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

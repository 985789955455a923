"""What a running edge service holds, and the dependencies its routes reach it through.

An edge (mail, video, ...) is wiring around this library: its settings, its own tables and
migrations, its routes. The pieces every edge shares are here and in :mod:`gatepass.edge` (the app
factory), :mod:`gatepass.ops` (``/about``, health, readiness, metrics), :mod:`gatepass.paging`,
:mod:`gatepass.runner` (the ``__main__``), :mod:`gatepass.alembic_env` (the migrations'
``env.py``) and :mod:`gatepass.edgetest` (running an edge in a test).

- :class:`EdgeServiceSettings`: token verification (:class:`~gatepass.EdgeAuthSettings`) plus
  what a running service needs (:class:`~gatepass.settings.ServiceSettings`: environment, API
  docs, logs, HTTP limits, trusted proxies, and here its database); each edge subclasses it with
  its own prefix and audience.
- :class:`ServiceDatabase`: the edge's own database (default file name, migrations, lock id).
- :class:`About`: what the edge tells anyone at ``GET /about``.
- :data:`DbSession`: an ``AsyncSession`` per request, ``async def route(db: DbSession)``.
- calls to other services: :data:`gatepass.calls.Calls`, opened by the lifespan too.

Needs the ``db`` extra (``gatepass[db]``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Self

import httpx
from fastapi import Depends, FastAPI, Request
from prometheus_client import CollectorRegistry
from pydantic import model_validator
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gatepass.db import create_engine, create_sessionmaker, sqlite_url, upgrade
from gatepass.fastapi import EdgeAuth
from gatepass.settings import EdgeAuthSettings, ServiceSettings

__all__ = [
    "About",
    "Database",
    "DbSession",
    "EdgeService",
    "EdgeServiceSettings",
    "Service",
    "ServiceDatabase",
    "attach",
    "attach_database",
    "database_of",
    "db_session",
    "edge_service",
    "open_database",
    "service_of",
]

log = logging.getLogger("gatepass.service")

_SERVICE_ATTRIBUTE = "gatepass_service"
_DATABASE_ATTRIBUTE = "gatepass_database"


class EdgeServiceSettings(EdgeAuthSettings, ServiceSettings):
    """An edge's one settings class: how it verifies tokens, and how it runs.

    Subclass it with the edge's prefix and audience::

        class MailSettings(EdgeServiceSettings):
            model_config = SettingsConfigDict(env_prefix="GATEPASS_MAIL_", extra="ignore")
            audience: str = "mail"
    """

    data_dir: Path = Path("./data")
    database_url: str | None = None

    def check_production(self) -> None:
        """An edge refuses an http issuer in production (its keys would come over plain http)."""
        super().check_production()
        self.check_issuer(self.issuer)

    @model_validator(mode="after")
    def _token_fits_in_headers(self) -> Self:
        """A token travels in a header: the header limit must leave room for the largest one."""
        if self.max_header_bytes < self.max_token_bytes + 1024:
            raise ValueError("max_header_bytes must exceed max_token_bytes by at least 1024")
        return self


@dataclass(frozen=True)
class ServiceDatabase:
    """An edge's own database: its default SQLite file name, its migrations, its lock id.

    ``lock_id`` is the PostgreSQL advisory lock replicas take to migrate one at a time: one
    constant per service, distinct from every other service's.
    """

    name: str
    migrations: Path
    lock_id: int

    def url(self, settings: EdgeServiceSettings) -> str:
        """``DATABASE_URL`` if set, else SQLite at ``<DATA_DIR>/<name>.db``."""
        return settings.database_url or sqlite_url(settings.data_dir, self.name)


@dataclass(frozen=True)
class About:
    """What ``GET /about`` says: the service, in a sentence, and what each scope allows here."""

    service: str
    summary: str
    scopes: Mapping[str, str] = field(default_factory=dict)
    version: str = "0.1.0"


@dataclass(frozen=True)
class EdgeService:
    """What the app factory built (nothing here does I/O until the lifespan starts it)."""

    settings: EdgeServiceSettings
    about: About
    database: ServiceDatabase
    auth: EdgeAuth
    registry: CollectorRegistry
    # The HTTP client given to edge_app (tests route the issuer and peers through one), if any.
    client: httpx.AsyncClient | None = None


@dataclass(frozen=True)
class Database:
    """The open database of a running service (set by the lifespan)."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]


@asynccontextmanager
async def open_database(
    spec: ServiceDatabase, settings: EdgeServiceSettings
) -> AsyncIterator[Database]:
    """The engine, migrated to the newest schema; disposed of on the way out."""
    engine = create_engine(spec.url(settings))
    try:
        await upgrade(engine, spec.migrations, lock_id=spec.lock_id)
        log.info("database ready", extra={"backend": engine.dialect.name})
        yield Database(engine, create_sessionmaker(engine))
    finally:
        await engine.dispose()


def attach(app: FastAPI, service: EdgeService) -> None:
    """Make ``service`` the app's, for :func:`edge_service`."""
    setattr(app.state, _SERVICE_ATTRIBUTE, service)


def attach_database(app: FastAPI, db: Database | None) -> None:
    """Make ``db`` the app's open database (``None``: closed)."""
    setattr(app.state, _DATABASE_ATTRIBUTE, db)


def service_of(app: FastAPI) -> EdgeService:
    service = getattr(app.state, _SERVICE_ATTRIBUTE, None)
    if not isinstance(service, EdgeService):
        raise RuntimeError("not an edge app: build it with gatepass.edge.edge_app")
    return service


def edge_service(request: Request) -> EdgeService:
    """The dependency: the app's :class:`EdgeService`."""
    return service_of(request.app)


def database_of(app: FastAPI) -> Database | None:
    """The app's open database, or ``None`` outside its lifespan."""
    db = getattr(app.state, _DATABASE_ATTRIBUTE, None)
    return db if isinstance(db, Database) else None


async def db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The dependency: one session per request, then closed; routes commit themselves."""
    db = database_of(request.app)
    if db is None:
        raise RuntimeError("the database is not open: is the app's lifespan running?")
    async with db.sessions() as session:
        yield session


Service = Annotated[EdgeService, Depends(edge_service)]
"""The running edge: ``async def route(service: Service)``."""

DbSession = Annotated[AsyncSession, Depends(db_session)]
"""A database session for this request: ``async def route(db: DbSession)``."""

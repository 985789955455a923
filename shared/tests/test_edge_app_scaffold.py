"""``gatepass.edge.edge_app``: an edge built from its parts, run through its lifespan.

The edge here is the smallest one: a ``notes`` table (its migration written per test, run by the
``env.py`` of :mod:`gatepass.alembic_env`) and two routes, so every shared piece is exercised:
settings, database and migrations, ``DbSession``, paging, probes, metrics and middleware.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from alembic import command
from fastapi import APIRouter, Depends, FastAPI
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict
from sqlalchemy import String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from gatepass import AccessPrincipal, Principal, require_scopes
from gatepass.db import alembic_config, create_engine, create_sessionmaker, current_revision
from gatepass.edge import edge_app
from gatepass.edgetest import EdgeUnderTest, expect_problem, free_port, run_edge
from gatepass.paging import Page, Paging
from gatepass.service import (
    About,
    Database,
    DbSession,
    EdgeServiceSettings,
    ServiceDatabase,
    attach_database,
    database_of,
)
from gatepass.testing import FakeIssuer

ENV_PY = """
from sqlalchemy import MetaData

from gatepass.alembic_env import run_migrations

run_migrations(MetaData())
"""

NOTES_MIGRATION = """
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade():
    op.create_table("notes", sa.Column("id", sa.String(20), primary_key=True))
"""


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"
    id: Mapped[str] = mapped_column(String(20), primary_key=True)


class NotesSettings(EdgeServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEPASS_NOTES_", extra="ignore")
    audience: str = "notes"


router = APIRouter()
Writer = Annotated[AccessPrincipal, Depends(require_scopes("notes:write"))]


@router.get("/notes")
async def notes(user: Principal, db: DbSession, page: Paging) -> Page[str]:
    rows = (await db.scalars(page.window(select(Note.id).order_by(Note.id)))).all()
    return Page.build(rows, page)


@router.post("/notes/{note_id}", status_code=201)
async def add(note_id: str, user: Writer, db: DbSession) -> dict[str, str]:
    db.add(Note(id=note_id))
    await db.commit()
    return {"id": note_id}


NotesFactory = Callable[..., FastAPI]


def write_migrations(folder: Path, migration: str = NOTES_MIGRATION) -> Path:
    (folder / "versions").mkdir(parents=True)
    (folder / "env.py").write_text(ENV_PY)
    (folder / "versions" / "0001_notes.py").write_text(migration)
    return folder


def notes_factory(migrations: Path) -> NotesFactory:
    def create_app(settings: NotesSettings, client: httpx.AsyncClient | None = None) -> FastAPI:
        return edge_app(
            settings,
            about=About("notes", "Notes, for the tests.", {"notes:write": "add a note"}),
            database=ServiceDatabase("notes", migrations, lock_id=42),
            routers=[router],
            client=client,
        )

    return create_app


@pytest.fixture
def fake_issuer() -> FakeIssuer:
    return FakeIssuer(clock=time.time)


@pytest.fixture
def settings(fake_issuer: FakeIssuer, tmp_path: Path) -> NotesSettings:
    return NotesSettings(issuer=fake_issuer.issuer, data_dir=tmp_path / "data")


@pytest.fixture
def create_app(tmp_path: Path) -> NotesFactory:
    return notes_factory(write_migrations(tmp_path / "migrations"))


@pytest.fixture
async def edge(
    create_app: NotesFactory, settings: NotesSettings, fake_issuer: FakeIssuer
) -> AsyncIterator[EdgeUnderTest]:
    async with run_edge(create_app, settings, fake_issuer) as edge:
        yield edge


async def test_the_lifespan_migrates_and_routes_use_the_database(edge: EdgeUnderTest) -> None:
    db = database_of(edge.app)
    assert db is not None
    assert await current_revision(db.engine) == "0001"
    writer = edge.bearer("usr_1", "notes:write")
    for note in ("c", "a", "b"):
        assert (await edge.http.post(f"/notes/{note}", headers=writer)).status_code == 201
    page = (await edge.http.get("/notes?limit=2", headers=writer)).json()
    assert page == {"items": ["a", "b"], "limit": 2, "offset": 0, "next_offset": 2}
    expect_problem(await edge.http.get("/notes?limit=1000", headers=writer), 422)


async def test_about_health_and_readiness(edge: EdgeUnderTest, settings: NotesSettings) -> None:
    about = (await edge.http.get("/about")).json()
    assert about == {
        "service": "notes",
        "summary": "Notes, for the tests.",
        "version": "0.1.0",
        "audience": "notes",
        "issuer": settings.issuer,
        "scopes": {"notes:write": "add a note"},
        "docs": None,  # production (the default): no API docs
    }
    assert (await edge.http.get("/healthz")).json() == {"status": "ok"}
    ready = await edge.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["keyset"]["usable"] is True


async def test_not_ready_when_the_database_does_not_answer(edge: EdgeUnderTest) -> None:
    nobody = create_engine(f"postgresql+asyncpg://gatepass:x@127.0.0.1:{free_port()}/notes")
    attach_database(edge.app, Database(nobody, create_sessionmaker(nobody)))
    try:
        body = expect_problem(await edge.http.get("/readyz"), 503, "not_ready")
    finally:
        await nobody.dispose()
    assert body["checks"] == {"keys": True, "database": False}
    assert body["detail"] == "Failing checks: database."


async def test_scopes_and_tokens_answer_as_rfc_6750(edge: EdgeUnderTest) -> None:
    expect_problem(await edge.http.get("/notes"), 401, "missing_token")
    reader = edge.bearer("usr_1", "notes:read")
    answer = await edge.http.post("/notes/a", headers=reader)
    expect_problem(answer, 403, "insufficient_scope")
    assert 'scope="notes:write"' in answer.headers["www-authenticate"]


async def test_middleware_ids_limits_and_problems(edge: EdgeUnderTest) -> None:
    answer = await edge.http.get("/healthz", headers={"x-request-id": "abc-123"})
    assert answer.headers["x-request-id"] == "abc-123"
    expect_problem(await edge.http.get("/nowhere"), 404, "not_found")
    big = await edge.http.post("/notes/a", content=b"x" * (64 * 1024 + 1))
    expect_problem(big, 413, "payload_too_large")


async def test_the_shared_http_layer_is_on(edge: EdgeUnderTest) -> None:
    """HEAD, security headers, no slash redirects, no docs in production (gatepass.httplayer)."""
    about = await edge.http.get("/about")
    head = await edge.http.head("/about")
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == about.headers["content-length"]
    for answer in (about, head, await edge.http.get("/notes")):
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"] == "no-store"
    slash = await edge.http.get("/about/", headers={"host": "evil.example"})
    expect_problem(slash, 404, "not_found")
    assert "location" not in slash.headers
    for path in ("/docs", "/redoc", "/openapi.json"):
        expect_problem(await edge.http.get(path), 404, "not_found")
    metrics = (await edge.http.get("/metrics")).text
    assert 'method="HEAD",route="/about",status="200"' in metrics


async def test_docs_in_development(
    create_app: NotesFactory, settings: NotesSettings, fake_issuer: FakeIssuer
) -> None:
    development = settings.model_copy(update={"environment": "development"})
    async with run_edge(create_app, development, fake_issuer) as edge:
        assert (await edge.http.get("/about")).json()["docs"] == "/docs"
        assert (await edge.http.get("/docs")).status_code == 200
        assert "/notes" in (await edge.http.get("/openapi.json")).json()["paths"]


async def test_metrics_count_by_route_template_never_by_path(edge: EdgeUnderTest) -> None:
    writer = edge.bearer("usr_1", "notes:write")
    await edge.http.post("/notes/one", headers=writer)
    await edge.http.post("/notes/two", headers=writer)
    await edge.http.get("/no/such/path")
    await edge.http.request("BREW", "/notes")
    metrics = (await edge.http.get("/metrics")).text
    assert (
        'gatepass_edge_http_requests_total{method="POST",route="/notes/{note_id}",status="201"} 2.0'
    ) in metrics
    assert 'route="unmatched",status="404"' in metrics
    assert 'method="OTHER"' in metrics
    assert "/notes/one" not in metrics
    assert "gatepass_edge_jwks_usable 1.0" in metrics


async def test_nothing_happens_before_the_lifespan(
    create_app: NotesFactory, settings: NotesSettings
) -> None:
    app = create_app(settings)
    assert database_of(app) is None
    assert not settings.data_dir.exists()


async def test_a_failed_migration_stops_the_start(
    tmp_path: Path, settings: NotesSettings, fake_issuer: FakeIssuer
) -> None:
    broken = write_migrations(tmp_path / "broken", NOTES_MIGRATION + "\n    raise ValueError")
    with pytest.raises(ValueError):  # noqa: PT011 (the migration's own error)
        async with run_edge(notes_factory(broken), settings, fake_issuer):
            pass


def test_migrations_run_only_on_a_handed_over_connection(tmp_path: Path) -> None:
    migrations = write_migrations(tmp_path / "migrations")
    with pytest.raises(RuntimeError, match=r"gatepass\.db\.upgrade"):
        command.upgrade(alembic_config(migrations), "head")


def test_service_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GATEPASS_NOTES_LOG_LEVEL", "debug")
    monkeypatch.setenv("GATEPASS_NOTES_DATA_DIR", str(tmp_path))
    settings = NotesSettings()
    assert (settings.audience, settings.log_level, settings.log_json) == ("notes", "DEBUG", False)
    spec = ServiceDatabase("notes", tmp_path, lock_id=1)
    assert spec.url(settings) == f"sqlite+aiosqlite:///{tmp_path.resolve()}/notes.db"
    url = "postgresql+asyncpg://db/notes"
    assert spec.url(NotesSettings(database_url=url)) == url
    with pytest.raises(ValidationError):
        NotesSettings(log_level="chatty")
    with pytest.raises(ValidationError):
        NotesSettings(max_body_bytes=10)

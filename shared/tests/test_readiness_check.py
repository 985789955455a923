"""``gatepass.ops.readiness``: the one readiness check of every service (an edge's ``/readyz``,
the auth service's too, each with its own conditions). A database that accepts and never
answers makes it 503 within ``READINESS_TIMEOUT``: a probe must never hang with it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI, Response
from pydantic_settings import SettingsConfigDict
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from gatepass.db import create_engine
from gatepass.edge import edge_app
from gatepass.edgetest import EdgeUnderTest, run_edge
from gatepass.ops import readiness
from gatepass.service import About, Database, EdgeServiceSettings, ServiceDatabase, attach_database
from gatepass.testing import FakeIssuer, HangingEngine

SHORT = 0.2  # seconds; each test allows 50 times that before calling it a hang


HANGING = cast("AsyncEngine", HangingEngine())


def body(response: Response) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(bytes(response.body))
    return decoded


async def test_ready_when_every_check_holds_and_the_database_answers(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    try:
        answer = await readiness(
            engine, {"keys": True}, database_timeout=SHORT, extra={"keyset": {"usable": True}}
        )
    finally:
        await engine.dispose()
    assert answer.status_code == 200
    assert body(answer) == {
        "status": "ready",
        "checks": {"keys": True, "database": True},
        "keyset": {"usable": True},
    }


async def test_a_database_that_hangs_is_not_ready_in_time() -> None:
    async with asyncio.timeout(50 * SHORT):
        answer = await readiness(HANGING, {"signing_key": True}, database_timeout=SHORT)
    assert answer.status_code == 503
    problem = body(answer)
    assert (problem["code"], problem["detail"]) == ("not_ready", "Failing checks: database.")
    assert problem["checks"] == {"signing_key": True, "database": False}


async def test_every_failing_check_is_named() -> None:
    answer = await readiness(None, {"keys": False}, database_timeout=SHORT, extra={"keyset": {}})
    problem = body(answer)
    assert answer.status_code == 503
    assert problem["detail"] == "Failing checks: keys, database."
    assert problem["keyset"] == {}


# -- an edge's /readyz ----------------------------------------------------------------------

ENV_PY = """
from sqlalchemy import MetaData

from gatepass.alembic_env import run_migrations

run_migrations(MetaData())
"""


class ProbeSettings(EdgeServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEPASS_PROBE_", extra="ignore")
    audience: str = "probe"


@pytest.fixture
async def edge(tmp_path: Path) -> AsyncIterator[EdgeUnderTest]:
    migrations = tmp_path / "migrations"
    (migrations / "versions").mkdir(parents=True)
    (migrations / "env.py").write_text(ENV_PY)

    def create_app(settings: ProbeSettings, client: httpx.AsyncClient | None = None) -> FastAPI:
        return edge_app(
            settings,
            about=About("probe", "An edge with nothing but its probes."),
            database=ServiceDatabase("probe", migrations, lock_id=43),
            routers=[],
            client=client,
        )

    issuer = FakeIssuer(clock=time.time)
    settings = ProbeSettings(
        issuer=issuer.issuer, data_dir=tmp_path / "data", readiness_timeout=SHORT
    )
    async with run_edge(create_app, settings, issuer) as running:
        yield running


async def test_an_edge_whose_database_hangs_is_not_ready(edge: EdgeUnderTest) -> None:
    assert (await edge.http.get("/readyz")).status_code == 200
    attach_database(edge.app, Database(HANGING, cast("async_sessionmaker[Any]", None)))
    async with asyncio.timeout(50 * SHORT):
        answer = await edge.http.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["checks"] == {"keys": True, "database": False}
    assert answer.json()["keyset"]["usable"] is True

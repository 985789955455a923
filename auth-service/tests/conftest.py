"""In-process fixtures for the auth service's domain logic: the real app over ASGI, a real SQLite
file, and a clock the test moves. No process, no port, no sleep.

- ``clock``: a :class:`FakeClock` (``clock.advance(seconds)``), injected into the app; the
  service's ``sleep`` is ``clock.sleep``, which moves the clock at once and records the wait.
- ``auth_settings``: development settings and cheap argon2, over a data folder copied from one
  first start (``started_data_dir``); a test may build its own with
  ``make_settings(tmp_path, **overrides)``, which starts from an empty folder.
- ``services``: :class:`auth_service.state.Services`, started (migrations, keys, dummy hash) with
  no background loops.
- ``app``, ``client``: the FastAPI app and an ``httpx.AsyncClient`` on it through
  ``ASGITransport`` (client address 127.0.0.1; ``asgi_clients.client_from(app, "10.0.0.9")``
  for another).
- ``oidc_app``: the OpenID Connect tests' app registered (``oidc_helpers.register_app``), for
  modules marked ``pytest.mark.usefixtures("oidc_app")``; ``browser``: a browser signed in.
- ``postgres_url``: a fresh database on a PostgreSQL server (the repository's test support), for
  ``postgres``-marked tests; skipped without a server (failed where one is required).
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_clients import client_from
from fake_clock import FakeClock
from fastapi import FastAPI
from oidc_helpers import Browser, register_app, sign_in

from auth_service.app import create_app, running
from auth_service.config import Settings
from auth_service.state import Services

# The repository's shared test support (PostgreSQL): importable when the whole suite runs from the
# root; with this folder alone only the folder itself is on the path.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.append(_ROOT)

from tests.support.inprocess import auth_settings as inprocess_settings  # noqa: E402
from tests.support.pg import server_for_tests  # noqa: E402


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Development settings over ``tmp_path`` (SQLite unless ``database_url`` says otherwise): the
    repository's in-process settings (``tests.support.inprocess.auth_settings``), whose issuer,
    ``http://auth.test``, is the ASGI clients' address."""
    return inprocess_settings(tmp_path, overrides.pop("database_url", None), **overrides)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings_for(tmp_path: Path) -> Callable[..., Settings]:
    """``settings_for(**overrides)``: :func:`make_settings` over this test's folder."""
    return functools.partial(make_settings, tmp_path)


@pytest.fixture(scope="session")
def started_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data folder a first start with :func:`make_settings`' defaults leaves at the fake
    clock's ``T0``: the migrated SQLite database, the development key-encryption key and a
    signing key per purpose. Made once per test process; ``auth_settings`` starts each test on a
    copy, rather than migrating and making an RSA key again (about 0.15 s of CPU a test). Tests
    that build their own settings (``settings_for``) still start from nothing."""
    settings = make_settings(tmp_path_factory.mktemp("first-start"))
    clock = FakeClock()

    async def first_start() -> None:
        async with running(settings, clock, background=False, sleep=clock.sleep):
            pass

    asyncio.run(first_start())
    return settings.data_dir


@pytest.fixture
def auth_settings(tmp_path: Path, started_data_dir: Path) -> Settings:
    settings = make_settings(tmp_path)
    shutil.copytree(started_data_dir, settings.data_dir)
    return settings


@pytest.fixture
async def services(auth_settings: Settings, clock: FakeClock) -> AsyncIterator[Services]:
    async with running(auth_settings, clock, background=False, sleep=clock.sleep) as svc:
        yield svc


@pytest.fixture
def app(auth_settings: Settings, clock: FakeClock, services: Services) -> FastAPI:
    application = create_app(auth_settings, clock=clock)
    application.state.services = services  # the lifespan's job, done by the fixture
    return application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_from(app) as http:
        yield http


@pytest.fixture
async def oidc_app(services: Services) -> None:
    await register_app(services)


@pytest.fixture
async def browser(client: httpx.AsyncClient, services: Services) -> Browser:
    return await sign_in(client, services)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database for the test, dropped after it."""
    with server_for_tests() as server:
        url = server.create_database()
        try:
            yield url
        finally:
            server.drop_database(url)

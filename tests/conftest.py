"""Fixtures for tests that run real services: PostgreSQL databases and an auth service process.

- ``postgres_server`` (session): a :class:`PostgresServer`, either the one that
  ``GATEPASS_TEST_DATABASE_URL`` names or a throwaway cluster started for the run. Skips the
  test when there is none, or fails it when ``GATEPASS_REQUIRE_POSTGRES=1`` (CI), so a missing
  server cannot pass unnoticed there.
- ``postgres_url`` (function): the SQLAlchemy URL of a fresh, empty database, dropped afterwards.
- ``database_url`` (function, parametrised): ``None`` (SQLite), then a ``postgres_url``.
- ``auth_port``, ``auth_env``: where this test's auth service listens and its settings
  (development mode, fresh data folder, cheap argon2 so tests do not wait on hashing).
- ``start_auth``: a :class:`ServiceFactory` that starts ``python -m auth_service`` and waits
  for ``/readyz``. When a test fails, the log tail of every service it started is in the report.
"""

from __future__ import annotations

import sys
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path

import pytest

from tests.support.identities import auth_identities
from tests.support.pg import PostgresServer, server_for_tests
from tests.support.procs import (
    FEED_READERS,
    READY_TIMEOUT,
    REPORTED_SERVICES,
    ServiceFactory,
    ServiceProcess,
    free_port,
    report_logs_of,
)

FAST_ARGON2 = {
    "GATEPASS_AUTH_ARGON2_TIME_COST": "1",
    "GATEPASS_AUTH_ARGON2_MEMORY_COST": "8192",
    "GATEPASS_AUTH_ARGON2_PARALLELISM": "1",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs PostgreSQL, so ``-m "not postgres"`` can leave them out."""
    for item in items:
        if "postgres_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the services' log tails to a failed test's report: the other half of the story."""
    report = yield
    if report.failed:
        for service in item.stash.get(REPORTED_SERVICES, []):
            report.sections.append(
                (f"log of {service.name} ({service.log_path})", service.log_tail(60))
            )
    return report


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole run: a cluster start costs seconds, so not per test."""
    with server_for_tests() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """``postgresql+asyncpg://gatepass:...@127.0.0.1:PORT/test_<hex>``: empty, this test's own."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """Each test twice: ``None`` (SQLite in the service's data folder), then a fresh PostgreSQL
    database, for in-process apps whose behaviour must hold on both."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def auth_port() -> int:
    """Where this test's auth service listens: known before it starts, so it can be the issuer."""
    return free_port()


@pytest.fixture
def auth_env(tmp_path: Path, auth_port: int) -> dict[str, str]:
    """Settings of this test's auth service; the issuer is its URL on ``auth_port``.

    A test may change the dict before calling ``start_auth``, or pass overrides to it.
    """
    return {
        "GATEPASS_AUTH_ENVIRONMENT": "development",
        "GATEPASS_AUTH_ISSUER": f"http://127.0.0.1:{auth_port}",
        "GATEPASS_AUTH_DATA_DIR": str(tmp_path / "auth-data"),
        **FAST_ARGON2,
        **FEED_READERS,
        **auth_identities(tmp_path),  # mail and video, registered as the edges' clients
    }


@pytest.fixture
def start_auth(
    request: pytest.FixtureRequest, tmp_path: Path, auth_env: dict[str, str], auth_port: int
) -> Iterator[ServiceFactory]:
    """Start the auth service as a process: ``start_auth()``, ``start_auth({"...": "..."})``.

    The first instance listens on ``auth_port``; later ones (replicas) on free ports, sharing the
    issuer and data folder from ``auth_env`` unless ``extra_env`` says otherwise. All are stopped
    (SIGTERM, then SIGKILL after 10 s) when the test ends.
    """
    started: list[ServiceProcess] = []

    def start(
        extra_env: Mapping[str, str] | None = None,
        *,
        port: int | None = None,
        timeout: float = READY_TIMEOUT,
    ) -> ServiceProcess:
        used = {service.base_url for service in started}
        if port is None:
            port = auth_port if f"http://127.0.0.1:{auth_port}" not in used else free_port()
        service = ServiceProcess(
            "auth" if not started else f"auth-{len(started) + 1}",
            [sys.executable, "-m", "auth_service", "--host", "127.0.0.1", "--port", str(port)],
            base_url=f"http://127.0.0.1:{port}",
            log_dir=tmp_path / "logs",
            env={**auth_env, **(extra_env or {})},
            cwd=tmp_path,
            listening_log="Uvicorn running on",
        )
        started.append(service)
        report_logs_of(request.node, service)
        service.start()
        service.wait_ready(timeout=timeout)
        return service

    yield start
    for service in reversed(started):
        service.stop()

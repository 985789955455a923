"""Fixtures that run the edge services (mail, video) as processes next to the auth service.

- ``edges``: an :class:`EdgeLauncher` for this test. ``edges.launch(MAIL, {...})`` starts
  ``python -m edge_service_mail`` (or video) on a free loopback port, with the issuer set to this
  test's auth service (``auth_port``) and a fresh data folder, without waiting; ``wait_ready()``
  then waits for ``/readyz`` (which needs the auth service up: an edge is ready once it holds the
  issuer's keys). ``edges.both({...})``: mail and video side by side (a start costs seconds of
  imports), both ready. Settings may be given without the edge's prefix
  (``{"MAX_STALENESS": "8"}``), so one dict configures both edges; names that start with
  ``GATEPASS_`` pass through unchanged. Every edge is stopped when the test ends, and a failing
  test's report shows its log tail (the auth service's is added by the root conftest).
- ``edge_stack``: an auth service and both edges started once for the package and shared by the
  tests that neither stop nor reconfigure them (a start costs seconds): default settings, except
  ``REFETCH_COOLDOWN=1`` at the edges. ``auth_process`` builds an auth service for such fixtures.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.auth_client import login, new_user
from tests.support.cli import run_cli
from tests.support.identities import auth_identities, edge_identity
from tests.support.procs import (
    FEED_READERS,
    FEED_TOKENS,
    READY_TIMEOUT,
    ServiceProcess,
    free_port,
    report_logs_of,
)


@dataclass(frozen=True)
class Edge:
    """What tests need to know about one edge service."""

    name: str  # also the audience it accepts
    module: str
    prefix: str
    protected_path: str  # the basic protected route
    scope: str  # the scope that route needs


MAIL = Edge("mail", "edge_service_mail", "GATEPASS_MAIL_", "/inbox", "mail:read")
VIDEO = Edge("video", "edge_service_video", "GATEPASS_VIDEO_", "/videos", "video:read")
EDGES = (MAIL, VIDEO)


def edge_settings(edge: Edge, settings: Mapping[str, str]) -> dict[str, str]:
    """``settings`` with the edge's prefix added to every name that lacks ``GATEPASS_``."""
    return {
        name if name.startswith("GATEPASS_") else f"{edge.prefix}{name}": value
        for name, value in settings.items()
    }


class EdgeLauncher:
    """Starts edge processes next to the auth service on ``auth_port``; the fixture that made it
    stops them (see ``edges``)."""

    def __init__(
        self, node: pytest.Item, tmp_path: Path, auth_port: int, started: list[ServiceProcess]
    ) -> None:
        self._node = node
        self._tmp_path = tmp_path
        self._auth_port = auth_port
        self.started = started

    def launch(
        self, edge: Edge, extra_env: Mapping[str, str] | None = None, *, port: int | None = None
    ) -> ServiceProcess:
        """Start ``edge`` without waiting for it (``wait_ready`` does that)."""
        count = sum(1 for service in self.started if service.name.startswith(edge.name))
        name = edge.name if count == 0 else f"{edge.name}-{count + 1}"
        port = port or free_port()
        env = {
            f"{edge.prefix}ISSUER": f"http://127.0.0.1:{self._auth_port}",
            f"{edge.prefix}ALLOW_HTTP_ISSUER": "true",  # production mode, plain http on loopback
            f"{edge.prefix}DATA_DIR": str(self._tmp_path / f"{name}-data"),
            f"{edge.prefix}FEED_TOKEN": FEED_TOKENS[edge.name],
            **edge_settings(edge, edge_identity(self._tmp_path, edge.name)),
            **edge_settings(edge, extra_env or {}),
        }
        service = ServiceProcess(
            name,
            [sys.executable, "-m", edge.module, "--host", "127.0.0.1", "--port", str(port)],
            base_url=f"http://127.0.0.1:{port}",
            log_dir=self._tmp_path / "logs",
            env=env,
            cwd=self._tmp_path,
            listening_log="Uvicorn running on",
        )
        self.started.append(service)
        report_logs_of(self._node, service)  # a failure shows its log tail
        service.start()
        return service

    def launch_pair(
        self, extra_env: Mapping[str, str] | None = None
    ) -> tuple[ServiceProcess, ServiceProcess]:
        """Mail and video, each told the other's address (``VIDEO_URL``, ``MAIL_URL``), without
        waiting for them."""
        mail_port, video_port = free_port(), free_port()
        peers = {
            "GATEPASS_MAIL_VIDEO_URL": f"http://127.0.0.1:{video_port}",
            "GATEPASS_VIDEO_MAIL_URL": f"http://127.0.0.1:{mail_port}",
        }
        settings = {**peers, **(extra_env or {})}
        return (
            self.launch(MAIL, settings, port=mail_port),
            self.launch(VIDEO, settings, port=video_port),
        )

    def both(
        self, extra_env: Mapping[str, str] | None = None, *, timeout: float = READY_TIMEOUT
    ) -> tuple[ServiceProcess, ServiceProcess]:
        """Mail and video, started side by side (each costs seconds of imports), both ready,
        each knowing where the other listens."""
        mail, video = self.launch_pair(extra_env)
        mail.wait_ready(timeout=timeout)
        video.wait_ready(timeout=timeout)
        return mail, video


@pytest.fixture
def edges(request: pytest.FixtureRequest, tmp_path: Path, auth_port: int) -> Iterator[EdgeLauncher]:
    """Edges for this test, pointed at its auth service (``auth_port``); stops every one."""
    started: list[ServiceProcess] = []
    yield EdgeLauncher(request.node, tmp_path, auth_port, started)
    for service in reversed(started):
        service.stop()


# What ``auth_env`` in tests/conftest.py sets, for fixtures that outlive one test.
AUTH_DEVELOPMENT = {
    "GATEPASS_AUTH_ENVIRONMENT": "development",
    "GATEPASS_AUTH_ARGON2_TIME_COST": "1",
    "GATEPASS_AUTH_ARGON2_MEMORY_COST": "8192",
    "GATEPASS_AUTH_ARGON2_PARALLELISM": "1",
    **FEED_READERS,
}


def auth_process(
    folder: Path, port: int, extra_env: Mapping[str, str] | None = None
) -> ServiceProcess:
    """The auth service as ``start_auth`` runs it (development, cheap argon2, data in ``folder``,
    the issuer its own URL), not started: for a fixture wider than one test."""
    return ServiceProcess(
        "auth",
        [sys.executable, "-m", "auth_service", "--host", "127.0.0.1", "--port", str(port)],
        base_url=f"http://127.0.0.1:{port}",
        log_dir=folder / "logs",
        env={
            **AUTH_DEVELOPMENT,
            "GATEPASS_AUTH_ISSUER": f"http://127.0.0.1:{port}",
            "GATEPASS_AUTH_DATA_DIR": str(folder / "auth-data"),
            **auth_identities(folder),
            **(extra_env or {}),
        },
        cwd=folder,
        listening_log="Uvicorn running on",
    )


@dataclass(frozen=True)
class EdgeStack:
    """An auth service and both edges, running."""

    auth: ServiceProcess
    mail: ServiceProcess
    video: ServiceProcess

    def of(self, edge: Edge) -> ServiceProcess:
        return self.mail if edge is MAIL else self.video

    @property
    def services(self) -> tuple[ServiceProcess, ...]:
        return (self.auth, self.mail, self.video)


# The unknown-kid flood counts the edges' fetches per cooldown; a short one keeps it short.
STACK_EDGES = {"REFETCH_COOLDOWN": "1"}


@pytest.fixture(scope="package")
def shared_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EdgeStack]:
    """Started on first use, stopped when the package's tests are done."""
    folder = tmp_path_factory.mktemp("edge-stack")
    port = free_port()
    started: list[ServiceProcess] = []
    launcher = EdgeLauncher(request.node, folder, port, started)
    try:
        # The edges' imports run while the auth service starts; they are ready once it is.
        mail, video = launcher.launch_pair(STACK_EDGES)
        auth = auth_process(folder, port)
        started.insert(0, auth)
        auth.start()
        for service in started:
            service.wait_ready()
        yield EdgeStack(auth, mail, video)
    finally:
        for service in reversed(started):
            service.stop()


@pytest.fixture
def edge_stack(request: pytest.FixtureRequest, shared_stack: EdgeStack) -> EdgeStack:
    """The package's shared stack; a failing test's report shows each service's log tail."""
    for service in shared_stack.services:
        report_logs_of(request.node, service)
    return shared_stack


@pytest.fixture(scope="module")
def admin_token(shared_stack: EdgeStack) -> Callable[[], str]:
    """A fresh access token of an admin made with the operator command on the stack's data."""
    with httpx.Client(base_url=shared_stack.auth.base_url, timeout=30) as client:
        email, _, _ = new_user(client, "admin")
    run_cli(shared_stack.auth.env, "admin", "create", email, "--promote-existing")

    def token() -> str:
        with httpx.Client(base_url=shared_stack.auth.base_url, timeout=30) as client:
            return str(login(client, email)["access_token"])

    return token

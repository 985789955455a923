"""Fixtures that run the edge services (mail, video) as processes next to the auth service.

- ``start_mail``, ``start_video``: :class:`ServiceFactory` s, like ``start_auth``. They start
  ``python -m edge_service_mail`` / ``edge_service_video`` on a free loopback port, with the issuer
  set to this test's auth service (``auth_port``) and a fresh data folder, and wait for
  ``/readyz`` (which needs the auth service up: an edge is ready once it holds the issuer's keys).
  Settings in ``extra_env`` may be given without the edge's prefix (``{"MAX_STALENESS": "8"}``),
  so one dict configures both edges; names that start with ``GATEPASS_`` pass through unchanged.
- ``start_edges``: both edges side by side (a start costs seconds of imports): ``(mail, video)``.
- When a test fails, the log tail of every edge it started is in the report (the auth service's
  is added by the root conftest).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from tests.support.procs import (
    READY_TIMEOUT,
    ServiceFactory,
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


class EdgePairFactory(Protocol):
    """What ``start_edges`` returns: call it to get ``(mail, video)``, started and ready."""

    def __call__(
        self, extra_env: Mapping[str, str] | None = None, *, timeout: float = READY_TIMEOUT
    ) -> tuple[ServiceProcess, ServiceProcess]: ...


def edge_settings(edge: Edge, settings: Mapping[str, str]) -> dict[str, str]:
    """``settings`` with the edge's prefix added to every name that lacks ``GATEPASS_``."""
    return {
        name if name.startswith("GATEPASS_") else f"{edge.prefix}{name}": value
        for name, value in settings.items()
    }


class EdgeLauncher:
    """Starts edge processes for one test and stops them all at its end."""

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

    def factory(self, edge: Edge) -> ServiceFactory:
        def start(
            extra_env: Mapping[str, str] | None = None,
            *,
            port: int | None = None,
            timeout: float = READY_TIMEOUT,
        ) -> ServiceProcess:
            service = self.launch(edge, extra_env, port=port)
            service.wait_ready(timeout=timeout)
            return service

        return start

    def both(
        self, extra_env: Mapping[str, str] | None = None, *, timeout: float = READY_TIMEOUT
    ) -> tuple[ServiceProcess, ServiceProcess]:
        """Mail and video, started side by side (each costs seconds of imports), both ready."""
        mail, video = self.launch(MAIL, extra_env), self.launch(VIDEO, extra_env)
        mail.wait_ready(timeout=timeout)
        video.wait_ready(timeout=timeout)
        return mail, video


@pytest.fixture
def edges(request: pytest.FixtureRequest, tmp_path: Path, auth_port: int) -> Iterator[EdgeLauncher]:
    """The launcher behind ``start_mail``/``start_video``/``start_edges``; stops every edge."""
    started: list[ServiceProcess] = []
    yield EdgeLauncher(request.node, tmp_path, auth_port, started)
    for service in reversed(started):
        service.stop()


@pytest.fixture
def start_mail(edges: EdgeLauncher) -> ServiceFactory:
    """Start the mail edge: ``start_mail()``, ``start_mail({"MAX_STALENESS": "8"})``."""
    return edges.factory(MAIL)


@pytest.fixture
def start_video(edges: EdgeLauncher) -> ServiceFactory:
    """Start the video edge: ``start_video()``, ``start_video({"LEEWAY": "0"})``."""
    return edges.factory(VIDEO)


@pytest.fixture
def start_edges(edges: EdgeLauncher) -> EdgePairFactory:
    """Start both edges at once with the same settings: ``mail, video = start_edges({...})``."""
    return edges.both

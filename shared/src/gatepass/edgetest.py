"""Test helpers for edge services built with :func:`gatepass.edge.edge_app`.

Beside :mod:`gatepass.testing` (the issuer in a box), two ways to run an edge in a test:

- in-process, through ``httpx.ASGITransport``, with its lifespan running and a
  :class:`~gatepass.testing.FakeIssuer` answering discovery and the JWKS::

      async with run_edge(create_app, MailSettings(issuer=issuer.issuer, data_dir=tmp_path),
                          issuer) as edge:
          await edge.http.get("/inbox", headers=edge.bearer("alice", "mail:read"))

- as a real child process (``python -m <module> --host 127.0.0.1 --port N``), to check the
  console entry point: :func:`child_service` waits until uvicorn says it is listening.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from gatepass.problems import PROBLEM_JSON
from gatepass.settings import EdgeAuthSettings
from gatepass.testing import FakeIssuer

__all__ = [
    "ChildService",
    "EdgeUnderTest",
    "child_service",
    "expect_problem",
    "free_port",
    "run_edge",
]

LISTENING = "Uvicorn running on"


@dataclass
class EdgeUnderTest:
    """A running edge app, a client for it, and the issuer whose tokens it accepts."""

    app: FastAPI
    http: httpx.AsyncClient
    issuer: FakeIssuer
    audience: str

    def bearer(self, sub: str, scope: str = "", **claims: Any) -> dict[str, str]:
        """An ``Authorization`` header for ``sub`` with ``scope``, addressed to this edge."""
        token = self.issuer.token(sub=sub, scope=scope, aud=[self.audience], **claims)
        return {"authorization": f"Bearer {token}"}


@asynccontextmanager
async def run_edge(
    create_app: Callable[..., FastAPI],
    settings: EdgeAuthSettings,
    issuer: FakeIssuer,
) -> AsyncIterator[EdgeUnderTest]:
    """``create_app(settings, client=<the issuer's mock client>)``, its lifespan running."""
    async with issuer.client() as client:
        app = create_app(settings, client=client)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://edge.test") as http,
        ):
            yield EdgeUnderTest(app, http, issuer, settings.audience)


def expect_problem(response: httpx.Response, status: int, code: str | None = None) -> Any:
    """Check ``response`` is a problem+json with ``status`` (and ``code``); return its body."""
    seen = f"{response.status_code} {response.headers.get('www-authenticate', '')} {response.text}"
    assert response.status_code == status, seen
    assert response.headers["content-type"].startswith(PROBLEM_JSON), seen
    body = response.json()
    assert body["status"] == status, seen
    assert code is None or body["code"] == code, seen
    return body


def free_port() -> int:
    """A loopback port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ChildService:
    """A service running as a child process, its output going to ``log``."""

    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def child_service(
    module: str, env: Mapping[str, str], log: Path, *, timeout: float = 30.0
) -> Iterator[ChildService]:
    """``python -m module`` on a free loopback port, until uvicorn listens; stopped by SIGTERM.

    The child gets this environment without any ``GATEPASS_*`` variable, plus ``env``.
    """
    port = free_port()
    command = [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", str(port)]
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("GATEPASS_")}
    with log.open("wb") as sink:
        process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            command, env={**child_env, **env}, stdout=sink, stderr=subprocess.STDOUT
        )
    service = ChildService(process, f"http://127.0.0.1:{port}", log)
    try:
        _wait_listening(service, timeout)
        yield service
    finally:
        _stop(process)


def _wait_listening(service: ChildService, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while LISTENING not in service.output():
        if service.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the service did not start:\n{service.output()}")
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

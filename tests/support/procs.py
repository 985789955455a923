"""Real services as child processes on loopback, for tests that cross process boundaries.

A :class:`ServiceProcess` is a :class:`gatepass.launch.Service` (start, readiness, log file,
SIGTERM then SIGKILL) with what tests add: a clean environment, a log per service in the test's
folder, a default readiness path, :meth:`~ServiceProcess.restart`, and a failed test's report
showing the service's log tail (:func:`report_logs_of`). Crash and restart tests use ``kill`` and
:meth:`~ServiceProcess.restart`; everything else uses it as a context manager.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import pytest

from gatepass.launch import READY_TIMEOUT, Service, ServiceStartError, clean_env, free_port

__all__ = [
    "FEED_READERS",
    "FEED_TOKENS",
    "READY_TIMEOUT",
    "ServiceFactory",
    "ServiceProcess",
    "ServiceStartError",
    "free_port",
    "report_logs_of",
    "service_env",
]

# The services whose log tails a failed test's report shows (see :func:`report_logs_of`).
REPORTED_SERVICES = pytest.StashKey[list["ServiceProcess"]]()


def report_logs_of(node: pytest.Item, service: ServiceProcess) -> None:
    """Have a failure of ``node`` show ``service``'s log tail (the hook is in tests/conftest.py)."""
    node.stash.setdefault(REPORTED_SERVICES, []).append(service)


# The environment of a child service: ours minus every ``GATEPASS_*`` variable, plus ``extra``.
service_env = clean_env

# Each edge reads the auth service's revocation feed with a token of its own: the auth services
# the tests start know both, the edges each theirs (as a deployment would set them).
FEED_TOKENS = {name: f"test-feed-{name}-{secrets.token_hex(16)}" for name in ("mail", "video")}
FEED_READERS = {"GATEPASS_AUTH_FEED_READ_TOKENS": json.dumps(FEED_TOKENS)}


class ServiceFactory(Protocol):
    """What a ``start_<service>`` fixture returns: call it to get a started, ready service.

    ``extra_env`` is laid over the fixture's settings (a ``..._DATABASE_URL``, say); ``port``
    defaults to a free one; ``timeout`` bounds the wait for readiness. The fixture stops every
    service it started when the test ends.
    """

    def __call__(
        self,
        extra_env: Mapping[str, str] | None = None,
        *,
        port: int | None = None,
        timeout: float = READY_TIMEOUT,
    ) -> ServiceProcess: ...


class ServiceProcess(Service):
    """One service command, logging to ``<log_dir>/<name>.log``, with ``env`` over a clean one.

    ``ready_path`` is what :meth:`wait_ready` polls when given no URL; ``listening_log`` is the
    line that proves the 200 came from this process (see :mod:`gatepass.launch`).
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        base_url: str,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        ready_path: str = "/readyz",
        listening_log: str | None = None,
    ) -> None:
        super().__init__(
            name,
            command,
            base_url=base_url,
            log=log_dir / f"{name}.log",
            env=service_env(env),
            cwd=cwd,
            listening_log=listening_log,
        )
        self.ready_path = ready_path

    def wait_ready(self, url: str | None = None, timeout: float = READY_TIMEOUT) -> None:
        """Poll ``url`` (a path or a URL; default ``ready_path``) until it answers 200."""
        super().wait_ready(url or self.ready_path, timeout)

    def restart(self, timeout: float = READY_TIMEOUT) -> ServiceProcess:
        """Stop (if still running), start with the same command, env and port, wait until ready."""
        self.stop()
        self.start()
        self.wait_ready(timeout=timeout)
        return self

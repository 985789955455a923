"""Real services as child processes on loopback, for tests that cross process boundaries.

A :class:`ServiceProcess` owns one command: it starts it with a clean environment, sends its output
to a log file (so a failing test can show what the service said), waits for it to answer a
readiness URL, and stops, kills or restarts it. Crash and restart tests use :meth:`kill` and
:meth:`restart`; everything else uses it as a context manager.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import NoReturn, Protocol

import httpx
import pytest

from gatepass.edgetest import free_port

__all__ = [
    "ServiceFactory",
    "ServiceProcess",
    "ServiceStartError",
    "free_port",
    "report_logs_of",
    "service_env",
]

STOP_TIMEOUT = 10.0
READY_TIMEOUT = 60.0  # generous: CI machines have two cores and run migrations at start-up
POLL_INTERVAL = 0.1


# The services whose log tails a failed test's report shows (see :func:`report_logs_of`).
REPORTED_SERVICES = pytest.StashKey[list["ServiceProcess"]]()


class ServiceStartError(RuntimeError):
    """A service exited or never became ready; the message ends with its last log lines."""


def report_logs_of(node: pytest.Item, service: ServiceProcess) -> None:
    """Have a failure of ``node`` show ``service``'s log tail (the hook is in tests/conftest.py)."""
    node.stash.setdefault(REPORTED_SERVICES, []).append(service)


def service_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a child service: ours minus every ``GATEPASS_*`` variable, plus ``extra``.

    A developer's shell may export settings for their own local services; inheriting them would
    make a test depend on whoever runs it. Unbuffered output keeps the log file current.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("GATEPASS_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


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


class ServiceProcess:
    """One service command, run as a child process that logs to ``<log_dir>/<name>.log``.

    ``base_url`` is where the service listens (the caller chose the port, usually with
    :func:`free_port`, and put it in ``command``); ``ready_path`` is what :meth:`wait_ready`
    polls when given no URL. The log file is appended to across restarts.

    ``listening_log`` is a line the service logs once it holds its port (uvicorn: "Uvicorn running
    on"). With it, a 200 counts only after this process said so: if the port was taken by someone
    else between :func:`free_port` and the bind, the answer came from *their* server, not ours.
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
        self.name = name
        self.listening_log = listening_log
        self.command = list(command)
        self.base_url = base_url.rstrip("/")
        self.env = service_env(env)
        self.cwd = cwd
        self.ready_path = ready_path
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"<ServiceProcess {self.name} {self.base_url} pid={self.pid}>"

    def __enter__(self) -> ServiceProcess:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def returncode(self) -> int | None:
        """The exit status once it has exited (negative: killed by that signal), else None."""
        return self._process.poll() if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def url(self, path: str) -> str:
        """An absolute URL: ``path`` joined to ``base_url`` (absolute URLs pass through)."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def start(self) -> ServiceProcess:
        """Start the command (not waiting for readiness: that is :meth:`wait_ready`).

        The child leads its own process group, so a signal reaches anything it spawned (a
        reloader, workers) and a Ctrl-C in the test runner's terminal does not hit it first.
        """
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        with self.log_path.open("ab") as log:
            log.write(f"--- {self.name}: {' '.join(self.command)}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_ready(self, url: str | None = None, timeout: float = READY_TIMEOUT) -> None:
        """Poll ``url`` (default ``ready_path``) until it answers 200.

        Raises :class:`ServiceStartError` with the log tail as soon as the process exits, or when
        ``timeout`` seconds pass, so a broken service fails the test with its own words.
        """
        target = self.url(url or self.ready_path)
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                self._raise_if_exited(f"before {target} answered 200")
                last = _probe(client, target)
                if last == "200" and self._holds_port():
                    return
                time.sleep(POLL_INTERVAL)
        self._raise(f"not ready after {timeout:g} s: {target} gave {last}")

    def _holds_port(self) -> bool:
        if self.listening_log is None:
            return True
        return self.listening_log in self.log_text().rpartition(f"--- {self.name}: ")[2]

    def wait_for_log(self, text: str, timeout: float = 10.0) -> None:
        """Wait until ``text`` appears in the log (a start-up line, a background job's report)."""
        deadline = time.monotonic() + timeout
        while text not in self.log_text():
            self._raise_if_exited(f"before logging {text!r}")
            if time.monotonic() >= deadline:
                self._raise(f"did not log {text!r} within {timeout:g} s")
            time.sleep(POLL_INTERVAL)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """Stop politely: SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. Returns the status.

        The grace period lets a service finish requests and close its database cleanly, which is
        what a restart test should exercise; the SIGKILL keeps a wedged service from hanging CI.
        """
        if not self.running:
            return self.returncode
        self._signal(signal.SIGTERM)
        try:
            return self._wait(timeout)
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self) -> int | None:
        """SIGKILL, as a crash would: no shutdown hooks run. Returns the status."""
        if not self.running:
            return self.returncode
        self._signal(signal.SIGKILL)
        return self._wait(STOP_TIMEOUT)

    def restart(self, timeout: float = READY_TIMEOUT) -> ServiceProcess:
        """Stop (if still running), start with the same command, env and port, wait until ready."""
        self.stop()
        self.start()
        self.wait_ready(timeout=timeout)
        return self

    def log_text(self) -> str:
        """Everything the service wrote so far, across restarts."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def _signal(self, signum: signal.Signals) -> None:
        assert self._process is not None
        with contextlib.suppress(ProcessLookupError):  # it exited after our check
            os.killpg(self._process.pid, signum)

    def _wait(self, timeout: float) -> int:
        assert self._process is not None
        return self._process.wait(timeout)

    def _raise_if_exited(self, when: str) -> None:
        code = self.returncode
        if code is not None:
            self._raise(f"exited with status {code} {when}")

    def _raise(self, problem: str) -> NoReturn:
        raise ServiceStartError(
            f"{self.name} {problem}\n--- last lines of {self.log_path}:\n{self.log_tail()}"
        )


def _probe(client: httpx.Client, url: str) -> str:
    """One readiness probe: the status code as text, or why there was none."""
    try:
        return str(client.get(url).status_code)
    except httpx.TransportError as exc:
        return type(exc).__name__

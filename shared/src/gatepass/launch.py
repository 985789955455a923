"""Services as child processes on loopback: start one, wait until it answers, stop it.

Everything that runs gatepass services as processes goes through :class:`Service`: the
cross-process tests, the edges' entry-point tests (:mod:`gatepass.edgetest`), ``./dev up`` and
the benchmarks. So a lesson learnt by one (a port taken between choosing it and binding it, a
child that ignores SIGTERM, a failure that hides what the service said) is kept by all::

    port = free_port()
    command = python_service("auth_service", port)
    with Service("auth", command, base_url=base_url(port), log=tmp / "auth.log") as auth:
        auth.wait_ready("/readyz")
        ...                                  # stopped on the way out: SIGTERM, then SIGKILL

A service

- runs in a process group of its own, so a signal reaches whatever it spawned, and a Ctrl-C in
  the terminal reaches only its owner, who stops the services in order;
- writes its output to its log file, which the first start empties and each start heads with a
  ``--- name: command`` line: a failure quotes the service's last words (:meth:`Service.log_tail`);
- is ready once a path answers 200 and, given ``listening_log`` (uvicorn: "Uvicorn running on"),
  once it has logged that line since its start: else a 200 could come from whoever took the port
  between :func:`free_port` and the bind;
- stops with SIGTERM, then SIGKILL after a grace period.

Standard library only (``http.client`` for the probes): a launcher must not depend on what it
launches.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import NoReturn, Self
from urllib.parse import urlsplit

__all__ = [
    "LOOPBACK",
    "READY_TIMEOUT",
    "STOP_GRACE",
    "Service",
    "ServiceStartError",
    "base_url",
    "clean_env",
    "free_port",
    "probe",
    "python_service",
]

LOOPBACK = "127.0.0.1"
READY_TIMEOUT = 60.0  # generous: a 2-core machine, busy, running migrations at start-up
STOP_GRACE = 10.0
POLL_INTERVAL = 0.1
PROBE_TIMEOUT = 2.0
TAIL_LINES = 40


class ServiceStartError(RuntimeError):
    """A service exited, or never became ready; the message ends with its last log lines.

    ``problem`` says what went wrong without the name or the log, for callers that word their
    own report (``./dev up``).
    """

    def __init__(self, service: Service, problem: str) -> None:
        self.name = service.name
        self.problem = problem
        self.log_path = service.log_path
        self.tail = service.log_tail(TAIL_LINES)
        super().__init__(f"{self.name} {problem}\n--- last lines of {self.log_path}:\n{self.tail}")


def free_port(host: str = LOOPBACK) -> int:
    """A port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def base_url(port: int, host: str = LOOPBACK) -> str:
    return f"http://{host}:{port}"


def python_service(module: str, port: int, host: str = LOOPBACK) -> list[str]:
    """``python -m module --host HOST --port PORT`` (this interpreter): any gatepass service."""
    return [sys.executable, "-m", module, "--host", host, "--port", str(port)]


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our environment minus every ``GATEPASS_*`` variable, plus ``extra``; output unbuffered.

    A developer's shell may export settings for their own services: a test or a benchmark that
    inherited them would depend on whoever runs it. Unbuffered output keeps the log file current.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("GATEPASS_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def probe(url: str, timeout: float = PROBE_TIMEOUT) -> str:
    """One ``GET url``: the status code as text, or the name of what prevented an answer."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection = http.client.HTTPConnection(parts.hostname or LOOPBACK, parts.port, timeout=timeout)
    try:
        connection.request("GET", target)
        return str(connection.getresponse().status)
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__
    finally:
        connection.close()


class Service:
    """One service command, run as a child process that writes to the file ``log``.

    ``base_url`` is where it listens: the caller chose the port (usually with :func:`free_port`)
    and put it in ``command``. ``env`` is the child's whole environment (default:
    :func:`clean_env`). As a context manager it is started on entry, if it is not running, and
    stopped on exit.
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        base_url: str,
        log: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        listening_log: str | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.base_url = base_url.rstrip("/")
        self.log_path = log
        self.env = dict(clean_env() if env is None else env)
        self.cwd = cwd
        self.listening_log = listening_log
        self._process: subprocess.Popen[bytes] | None = None
        self._run_offset = 0  # where this run's output starts in the log file

    def __repr__(self) -> str:
        pid = self._process.pid if self._process else None
        return f"<{type(self).__name__} {self.name} {self.base_url} pid={pid}>"

    def __enter__(self) -> Self:
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
    def port(self) -> int:
        return urlsplit(self.base_url).port or 80

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
        """``path`` joined to ``base_url`` (an absolute URL passes through)."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def start(self) -> Self:
        """Start the command, not waiting for it (that is :meth:`wait_ready`).

        The first start empties the log file; a restart appends to it, after its own header.
        """
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab" if self._process else "wb") as log:
            log.write(f"--- {self.name}: {' '.join(self.command)}\n".encode())
            log.flush()
            self._run_offset = log.tell()
            self._process = subprocess.Popen(  # noqa: S603 - the caller's own command
                self.command,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_ready(self, path: str = "/healthz", timeout: float = READY_TIMEOUT) -> None:
        """Poll ``path`` (or an absolute URL) until it answers 200 (see ``listening_log``).

        Raises :class:`ServiceStartError` as soon as the process exits, or after ``timeout``
        seconds, so a broken service fails its caller in its own words.
        """
        target = self.url(path)
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            self.raise_if_exited("before it was ready")
            last = probe(target)
            if last == "200" and self._listening():
                return
            time.sleep(POLL_INTERVAL)
        self._fail(f"was not ready after {timeout:g} s ({target} gave {last})")

    def wait_for_log(self, text: str, timeout: float = READY_TIMEOUT) -> None:
        """Wait until this run's output holds ``text`` (a start-up line, a job's report)."""
        deadline = time.monotonic() + timeout
        while text not in self.run_output():
            self.raise_if_exited(f"before logging {text!r}")
            if time.monotonic() >= deadline:
                self._fail(f"did not log {text!r} within {timeout:g} s")
            time.sleep(POLL_INTERVAL)

    def raise_if_exited(self, when: str) -> None:
        """Raise :class:`ServiceStartError` if the process has exited; ``when`` ends the message."""
        code = self.returncode
        if code is not None:
            self._fail(f"exited with status {code} {when}")

    def stop(
        self, timeout: float = STOP_GRACE, *, before_kill: Callable[[], object] | None = None
    ) -> int | None:
        """SIGTERM, up to ``timeout`` seconds to exit, then SIGKILL. Returns the exit status.

        The grace period lets a service finish its requests and close its database cleanly; the
        SIGKILL keeps a wedged one from hanging its owner. ``before_kill`` is called just before
        the SIGKILL, to say so.
        """
        if not self.running:
            return self.returncode
        self._signal(signal.SIGTERM)
        try:
            return self._wait(timeout)
        except subprocess.TimeoutExpired:
            if before_kill is not None:
                before_kill()
            return self.kill()

    def kill(self) -> int | None:
        """SIGKILL, as a crash would: no shutdown hooks run. Returns the exit status."""
        if not self.running:
            return self.returncode
        self._signal(signal.SIGKILL)
        return self._wait(STOP_GRACE)

    def log_text(self) -> str:
        """Everything the service wrote so far, across restarts, headers included."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def run_output(self) -> str:
        """What the current (or last) run wrote: the log after its start's header."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(self._run_offset)
            return log.read().decode("utf-8", errors="replace")

    def log_tail(self, lines: int = TAIL_LINES) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def _listening(self) -> bool:
        return self.listening_log is None or self.listening_log in self.run_output()

    def _signal(self, signum: signal.Signals) -> None:
        assert self._process is not None
        with contextlib.suppress(ProcessLookupError):  # it exited after our check
            os.killpg(self._process.pid, signum)

    def _wait(self, timeout: float) -> int:
        assert self._process is not None
        return self._process.wait(timeout)

    def _fail(self, problem: str) -> NoReturn:
        raise ServiceStartError(self, problem)

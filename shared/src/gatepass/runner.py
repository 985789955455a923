"""Run a gatepass service from the command line: the body of every edge's ``__main__``.

::

    def main(argv: list[str] | None = None) -> None:
        run_service(create_app, MailSettings, prog="gatepass-mail", port=8001, argv=argv)

``--host`` (default 127.0.0.1) and ``--port`` pick where it listens. Settings the environment gets
wrong are one message on stderr and exit code 2, before anything listens. Logs go through
:func:`gatepass.logs.configure_logging` (uvicorn's own access log is off: it prints query
strings, where some clients put tokens); uvicorn still says ``Uvicorn running on ...`` once it
listens, which scripts and tests wait for.

Needs ``uvicorn``: a service's dependency, not the library's.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, NoReturn, Protocol, TypeVar

import uvicorn
from pydantic import ValidationError

from gatepass.logs import configure_logging

__all__ = ["GRACEFUL_SHUTDOWN_SECONDS", "RunnableSettings", "run_service"]

GRACEFUL_SHUTDOWN_SECONDS = 5


class RunnableSettings(Protocol):
    """What the runner reads from a service's settings."""

    @property
    def log_level(self) -> str: ...

    @property
    def log_json(self) -> bool: ...


SettingsT = TypeVar("SettingsT", bound=RunnableSettings)


def run_service(
    create_app: Callable[[SettingsT], Any],
    load_settings: Callable[[], SettingsT],
    *,
    prog: str,
    port: int,
    description: str | None = None,
    argv: list[str] | None = None,
    serve: Callable[..., None] = uvicorn.run,
) -> None:
    """Parse ``argv``, load the settings, configure logs, and serve ``create_app(settings)``.

    ``serve`` is ``uvicorn.run``; tests pass a stand-in to see what it would be called with.
    """
    args = _parse_args(argv, prog=prog, port=port, description=description)
    settings = _load(load_settings, prog)
    configure_logging(settings.log_level, json_logs=settings.log_json)
    serve(
        create_app(settings),
        host=args.host,
        port=args.port,
        lifespan="on",  # a failed start-up (a migration, say) stops the process
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=True,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


def _parse_args(
    argv: list[str] | None, *, prog: str, port: int, description: str | None
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description=description or f"Run {prog}.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=port, help=f"port to bind (default {port})")
    return parser.parse_args(argv)


def _load(load_settings: Callable[[], SettingsT], prog: str) -> SettingsT:
    """The settings, or a clear message and exit code 2."""
    try:
        return load_settings()
    except ValidationError as exc:
        _fail(prog, "invalid settings:\n" + _describe(exc))


def _describe(exc: ValidationError) -> str:
    """One line a problem: the setting and what is wrong, never the value (it may be secret)."""
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "settings"
        lines.append(f"  {where}: {error['msg']}")
    return "\n".join(lines)


def _fail(prog: str, message: str) -> NoReturn:
    print(f"{prog}: {message}", file=sys.stderr)
    sys.exit(2)

"""Run a gatepass service from the command line: the body of every service's ``__main__``.

::

    def main(argv: list[str] | None = None) -> None:
        run_service(create_app, MailSettings, prog="gatepass-mail", port=8001, argv=argv)

``--host`` (default 127.0.0.1) and ``--port`` pick where it listens. Settings the environment gets
wrong are one message on stderr and exit code 2, before anything listens: a value that does not
parse, what the settings' own ``check_production`` refuses (an http issuer in production, say),
and whatever the service's own start-up ``check`` refuses (both raise
:class:`gatepass.settings.ConfigError`). The message names the setting, never its value: some
are secrets. Logs go through :func:`gatepass.logs.configure_logging` (uvicorn's own access log is
off: it prints query strings, where some clients put tokens); uvicorn still says ``Uvicorn
running on ...`` once it listens, which scripts and tests wait for.

uvicorn runs with the limits of :mod:`gatepass.server` (header size and read time, keep-alive,
concurrency) and without its own forwarding-header support: the app's
:mod:`gatepass.proxies` decides who the client is, from the service's ``TRUSTED_PROXIES``.

Needs ``uvicorn`` with ``httptools`` (``uvicorn[standard]``): a service's dependency, not the
library's.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import uvicorn
from pydantic import ValidationError
from pydantic_settings import SettingsError as SettingsSourceError

from gatepass.logs import configure_logging
from gatepass.server import uvicorn_options
from gatepass.settings import ConfigError, ServiceSettings, describe_settings_error

__all__ = ["GRACEFUL_SHUTDOWN_SECONDS", "run_service"]

GRACEFUL_SHUTDOWN_SECONDS = 5
# uvicorn's variables that no longer do anything here, and what to set instead.
_IGNORED_ENVIRONMENT = {"FORWARDED_ALLOW_IPS": "the service's TRUSTED_PROXIES setting"}

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)

log = logging.getLogger("gatepass.runner")


def run_service(
    create_app: Callable[[SettingsT], Any],
    load_settings: Callable[[], SettingsT],
    *,
    prog: str,
    port: int,
    description: str | None = None,
    argv: list[str] | None = None,
    check: Callable[[SettingsT], object] | None = None,
    graceful_shutdown: int = GRACEFUL_SHUTDOWN_SECONDS,
    serve: Callable[..., None] = uvicorn.run,
) -> None:
    """Parse ``argv``, load and check the settings, configure logs, serve ``create_app(settings)``.

    ``check`` is the service's start-up check (a production setting missing, a key file
    unreadable): it raises :class:`~gatepass.settings.ConfigError`. ``serve`` is ``uvicorn.run``;
    tests pass a stand-in to see what it would be called with.
    """
    args = _parse_args(argv, prog=prog, port=port, description=description)
    settings = _load(load_settings, prog)
    _check(_production, settings, prog)
    if check is not None:
        _check(check, settings, prog)
    configure_logging(settings.log_level, json_logs=settings.log_json)
    _warn_about_ignored_environment()
    serve(
        create_app(settings),
        host=args.host,
        port=args.port,
        lifespan="on",  # a failed start-up (a migration, say) stops the process
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=graceful_shutdown,
        **uvicorn_options(settings),
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
    except (ValidationError, SettingsSourceError) as exc:
        _fail(prog, "invalid settings:\n" + describe_settings_error(exc))


def _production(settings: ServiceSettings) -> None:
    settings.check_production()


def _check(check: Callable[[SettingsT], object], settings: SettingsT, prog: str) -> None:
    """The service's start-up check, or its message and exit code 2."""
    try:
        check(settings)
    except ConfigError as exc:
        _fail(prog, str(exc))


def _warn_about_ignored_environment() -> None:
    for name, instead in _IGNORED_ENVIRONMENT.items():
        if name in os.environ:
            log.warning("%s is ignored; set %s", name, instead)


def _fail(prog: str, message: str) -> NoReturn:
    print(f"{prog}: {message}", file=sys.stderr)
    sys.exit(2)

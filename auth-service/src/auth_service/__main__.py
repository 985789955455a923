"""``gatepass-auth``: run the auth service."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

import uvicorn
from pydantic import ValidationError

from auth_service.app import create_app
from auth_service.config import ConfigError, Settings
from auth_service.keys import load_kek
from gatepass.logs import configure_logging


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="gatepass-auth", description="Run the gatepass auth service."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    return parser.parse_args(argv)


def load_settings() -> Settings:
    """Settings from the environment, or a clear message and exit code 2."""
    try:
        settings = Settings()
        settings.check_production()
        load_kek(settings)
    except ValidationError as exc:
        _fail(f"invalid settings:\n{exc}")
    except ConfigError as exc:
        _fail(str(exc))
    return settings


def _fail(message: str) -> NoReturn:
    print(f"gatepass-auth: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    settings = load_settings()
    configure_logging(settings.log_level, json_logs=settings.log_json)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()

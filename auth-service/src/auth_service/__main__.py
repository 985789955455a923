"""``gatepass-auth``: run the auth service, through the runner every gatepass service uses."""

from __future__ import annotations

from auth_service import client_file
from auth_service.app import create_app
from auth_service.config import Settings
from auth_service.keys import load_kek
from gatepass.runner import run_service

GRACEFUL_SHUTDOWN_SECONDS = 10  # a login may be hashing a password: let it finish


def check(settings: Settings) -> None:
    """Refuse to start on settings only a developer's machine may have, an unusable KEK, or a
    clients file that cannot be read."""
    settings.check_production()
    load_kek(settings)
    if settings.clients_file is not None:
        client_file.read(settings.clients_file)


def main(argv: list[str] | None = None) -> None:
    run_service(
        create_app,
        Settings,
        prog="gatepass-auth",
        port=8000,
        description="Run the gatepass auth service.",
        argv=argv,
        check=check,
        graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


if __name__ == "__main__":
    main()

"""``gatepass-mail`` (or ``python -m edge_service_mail``): run the mail service."""

from __future__ import annotations

from edge_service_mail.app import create_app
from edge_service_mail.config import MailSettings
from gatepass.runner import run_service


def main(argv: list[str] | None = None) -> None:
    run_service(create_app, MailSettings, prog="gatepass-mail", port=8001, argv=argv)


if __name__ == "__main__":
    main()

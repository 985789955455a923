"""The mail service's application factory: wiring around :func:`gatepass.edge.edge_app`."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI

from edge_service_mail import mailboxes, routes
from edge_service_mail.config import MailSettings
from gatepass.edge import edge_app
from gatepass.service import About, ServiceDatabase

DATABASE = ServiceDatabase(
    "mail",
    Path(__file__).parent / "migrations",
    lock_id=0x67702D6D61696C,  # "gp-mail": the mail service's advisory lock for migrations
)

ABOUT = About(
    service="mail",
    summary="A user's inbox: send to another user by id, read, and delete messages.",
    scopes={
        routes.READ: "list your inbox and sent messages, read and delete your messages",
        routes.SEND: "send a message",
    },
)


def create_app(
    settings: MailSettings | None = None, *, client: httpx.AsyncClient | None = None
) -> FastAPI:
    """The app. Nothing connects before its lifespan; ``client`` fetches the issuer's keys."""
    settings = settings or MailSettings()
    app = edge_app(settings, about=ABOUT, database=DATABASE, routers=[routes.router], client=client)
    mailboxes.attach_known(app, mailboxes.KnownMailboxes(settings.mailbox_cache_size))
    return app

"""The mail service's application factory: wiring around :func:`gatepass.edge.edge_app`."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI

from edge_service_mail import mailboxes, routes, videos
from edge_service_mail.config import MailSettings
from gatepass.clientkey import ClientRegistration
from gatepass.edge import edge_app
from gatepass.service import About, ServiceDatabase

DATABASE = ServiceDatabase(
    "mail",
    Path(__file__).parent / "migrations",
    lock_id=0x67702D6D61696C,  # "gp-mail": the mail service's advisory lock for migrations
)

ABOUT = About(
    service="mail",
    summary=(
        "A user's inbox: send to another user by id (pointing at a video, perhaps), read, "
        "and delete messages; services put notifications in it."
    ),
    scopes={
        routes.READ: "list your inbox and sent messages, read and delete your messages",
        routes.SEND: "send a message",
        routes.NOTIFY: "put a notification into a user's inbox (services only)",
    },
)


CLIENT = ClientRegistration(
    client_id="mail",
    audiences=("auth", "video"),  # the revocation feed; the user's videos, on their behalf
    scopes=("revocations:read", "video:read"),
    resource="mail",  # users' tokens for mail are what it exchanges
)
"""How the auth service registers mail (``gatepass.clientkey``): what it calls, and for what."""


def create_app(
    settings: MailSettings | None = None, *, client: httpx.AsyncClient | None = None
) -> FastAPI:
    """The app. Nothing connects before its lifespan; ``client`` fetches the issuer's keys."""
    settings = settings or MailSettings()
    app = edge_app(
        settings,
        about=ABOUT,
        database=DATABASE,
        routers=[routes.router, routes.services],
        client=client,
    )
    mailboxes.attach_known(app, mailboxes.KnownMailboxes(settings.mailbox_cache_size))
    videos.attach(app, videos.Videos(settings.video_url))
    return app

"""The video service's application factory: wiring around :func:`gatepass.edge.edge_app`."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI

from edge_service_video import notices, routes
from edge_service_video.config import VideoSettings
from gatepass.clientkey import ClientRegistration
from gatepass.edge import edge_app
from gatepass.service import About, ServiceDatabase, service_of

DATABASE = ServiceDatabase(
    "video",
    Path(__file__).parent / "migrations",
    lock_id=0x67702D766964656F,  # "gp-video": the video service's advisory lock for migrations
)

ABOUT = About(
    service="video",
    summary="A video catalogue: browse, upload metadata, delete your own (or any, as moderator).",
    scopes={
        routes.READ: "browse the catalogue and read a video's metadata",
        routes.UPLOAD: "upload a video, and delete your own",
        routes.DELETE: "delete any video",
    },
)


CLIENT = ClientRegistration(
    client_id="video",
    audiences=("auth", "mail"),  # the revocation feed; notifications into users' inboxes
    scopes=("mail:notify", "revocations:read"),
    resource="video",
)
"""How the auth service registers video (``gatepass.clientkey``): what it calls, and for what."""


def create_app(
    settings: VideoSettings | None = None, *, client: httpx.AsyncClient | None = None
) -> FastAPI:
    """The app. Nothing connects before its lifespan; ``client`` fetches the issuer's keys."""
    settings = settings or VideoSettings()
    app = edge_app(settings, about=ABOUT, database=DATABASE, routers=[routes.router], client=client)
    notices.attach(app, notices.Notices(settings.mail_url, service_of(app).registry))
    return app

"""The mail service's one settings class: environment prefix ``GATEPASS_MAIL_``."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from gatepass.service import EdgeServiceSettings
from gatepass.settings import PeerUrl


class MailSettings(EdgeServiceSettings):
    """Token verification (``GATEPASS_MAIL_ISSUER``, ...) and how the service runs.

    Calls to the video service (a message's video) use the edge's client identity
    (``CLIENT_ID`` with ``CLIENT_KEY_FILE`` or ``CLIENT_SECRET``, ``CALL_TIMEOUT``,
    ``CALL_RETRIES``: the library's settings) and ``VIDEO_URL``.
    """

    model_config = SettingsConfigDict(env_prefix="GATEPASS_MAIL_", extra="ignore")

    audience: str = "mail"
    # Owners whose mailbox this replica knows exists, so only a user's first request writes.
    mailbox_cache_size: int = Field(10_000, ge=0, le=1_000_000)
    # The video service's base URL, where a message's video is looked up.
    video_url: PeerUrl = "http://127.0.0.1:8002"

"""The video service's one settings class: environment prefix ``GATEPASS_VIDEO_``."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from gatepass.service import EdgeServiceSettings
from gatepass.settings import PeerUrl


class VideoSettings(EdgeServiceSettings):
    """Token verification (``GATEPASS_VIDEO_ISSUER``, ...) and how the service runs.

    Telling an uploader their video is up (a notification in their mail inbox) uses the edge's
    client identity (``CLIENT_ID`` with ``CLIENT_KEY_FILE`` or ``CLIENT_SECRET``,
    ``CALL_TIMEOUT``: the library's settings) and ``MAIL_URL``.
    """

    model_config = SettingsConfigDict(env_prefix="GATEPASS_VIDEO_", extra="ignore")

    audience: str = "video"
    # The mail service's base URL, where upload notifications go.
    mail_url: PeerUrl = "http://127.0.0.1:8001"

"""The video service's one settings class: environment prefix ``GATEPASS_VIDEO_``."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from gatepass.service import EdgeServiceSettings


class VideoSettings(EdgeServiceSettings):
    """Token verification (``GATEPASS_VIDEO_ISSUER``, ...) and how the service runs."""

    model_config = SettingsConfigDict(env_prefix="GATEPASS_VIDEO_", extra="ignore")

    audience: str = "video"

"""The mail service's one settings class: environment prefix ``GATEPASS_MAIL_``."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from gatepass.service import EdgeServiceSettings


class MailSettings(EdgeServiceSettings):
    """Token verification (``GATEPASS_MAIL_ISSUER``, ...) and how the service runs."""

    model_config = SettingsConfigDict(env_prefix="GATEPASS_MAIL_", extra="ignore")

    audience: str = "mail"

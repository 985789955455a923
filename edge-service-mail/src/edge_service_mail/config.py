"""The mail service's one settings class: environment prefix ``GATEPASS_MAIL_``."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from gatepass.service import EdgeServiceSettings


class MailSettings(EdgeServiceSettings):
    """Token verification (``GATEPASS_MAIL_ISSUER``, ...) and how the service runs."""

    model_config = SettingsConfigDict(env_prefix="GATEPASS_MAIL_", extra="ignore")

    audience: str = "mail"
    # Owners whose mailbox this replica knows exists, so only a user's first request writes.
    mailbox_cache_size: int = Field(10_000, ge=0, le=1_000_000)

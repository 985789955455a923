"""Settings of an edge's token verification, from environment variables with the edge's prefix.

Each edge has its own prefix (``GATEPASS_MAIL_``, ``GATEPASS_VIDEO_``). Either build these settings
for a prefix::

    settings = edge_auth_settings("GATEPASS_MAIL_", audience="mail")

or make them part of the edge's one settings class::

    class MailSettings(EdgeAuthSettings):
        model_config = SettingsConfigDict(env_prefix="GATEPASS_MAIL_", extra="ignore")
        audience: str = "mail"
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gatepass.keyset import KeySetConfig

AlgorithmName = Literal["ES256", "RS256", "EdDSA"]


class EdgeAuthSettings(BaseSettings):
    """How an edge verifies access tokens. Times are seconds."""

    model_config = SettingsConfigDict(env_prefix="GATEPASS_EDGE_", extra="ignore")

    issuer: str = "http://127.0.0.1:8000"
    audience: str
    jwks_url: str | None = None
    algorithms: Annotated[tuple[AlgorithmName, ...], NoDecode] = ("ES256", "RS256", "EdDSA")
    leeway: float = Field(60.0, ge=0, le=300)
    max_token_bytes: int = Field(8 * 1024, ge=1024, le=64 * 1024)

    max_staleness: float = Field(12 * 3600.0, gt=0)
    refetch_cooldown: float = Field(30.0, ge=1)
    jwks_min_ttl: float = Field(60.0, gt=0)
    jwks_default_ttl: float = Field(300.0, gt=0)
    jwks_max_ttl: float = Field(24 * 3600.0, gt=0)
    negative_cache_ttl: float = Field(300.0, ge=0)
    jwks_max_bytes: int = Field(64 * 1024, ge=1024)
    fetch_timeout: float = Field(5.0, gt=0)
    last_known_good_path: Path | None = None

    token_cache_size: int = Field(10_000, ge=0)
    cookie_name: str | None = None
    csrf_cookie_name: str | None = "gatepass_csrf"
    csrf_header_name: str = "X-CSRF-Token"
    realm: str | None = None

    @field_validator("algorithms", mode="before")
    @classmethod
    def _split_algorithms(cls, value: Any) -> Any:
        """``ES256,RS256`` from the environment, a list or tuple from code."""
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _check(self) -> Self:
        if not self.algorithms:
            raise ValueError("algorithms must name at least one algorithm")
        self.keyset_config()  # the TTL bounds must be in order
        return self

    def keyset_config(self) -> KeySetConfig:
        """These settings as the key set's configuration."""
        return KeySetConfig(
            min_ttl=self.jwks_min_ttl,
            default_ttl=self.jwks_default_ttl,
            max_ttl=self.jwks_max_ttl,
            max_staleness=self.max_staleness,
            cooldown=self.refetch_cooldown,
            negative_ttl=self.negative_cache_ttl,
            max_bytes=self.jwks_max_bytes,
            fetch_timeout=self.fetch_timeout,
        )

    @property
    def effective_realm(self) -> str:
        """The ``realm`` of ``WWW-Authenticate``: set, or the audience."""
        return self.realm or self.audience


def edge_auth_settings(prefix: str, **values: Any) -> EdgeAuthSettings:
    """Settings read from ``{prefix}ISSUER``, ``{prefix}AUDIENCE``...; ``values`` win over them."""
    return EdgeAuthSettings(_env_prefix=prefix, **values)

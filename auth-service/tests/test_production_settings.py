"""The auth service's production check: an http issuer is refused unless allowed outright, with
the service's own ``ConfigError`` (the ``gatepass`` CLI turns exactly that into exit 2)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from auth_service.config import ConfigError, Settings


def production(tmp_path: Path, **values: object) -> Settings:
    return Settings(
        environment="production",
        data_dir=tmp_path,
        kek=secrets.token_hex(32),
        **values,  # type: ignore[arg-type]
    )


def test_an_http_issuer_is_refused_with_the_service_s_own_error(tmp_path: Path) -> None:
    settings = production(tmp_path, issuer="http://auth.internal.test")
    with pytest.raises(ConfigError) as refused:
        settings.check_production()
    assert "GATEPASS_AUTH_ISSUER must be an https URL in production" in str(refused.value)
    assert "GATEPASS_AUTH_ALLOW_HTTP_ISSUER=true" in str(refused.value)
    assert "auth.internal.test" not in str(refused.value)


def test_https_or_an_allowed_http_issuer_passes(tmp_path: Path) -> None:
    production(tmp_path, issuer="https://auth.example.test").check_production()
    production(tmp_path, issuer="http://auth:8000", allow_http_issuer=True).check_production()

"""Edge settings: one class, read with each edge's own prefix."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from gatepass import EdgeAuthSettings, edge_auth_settings
from gatepass.service import EdgeServiceSettings
from gatepass.settings import ConfigError


def test_read_with_a_given_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GATEPASS_MAIL_ISSUER", "https://auth.example.test")
    monkeypatch.setenv("GATEPASS_MAIL_AUDIENCE", "mail")
    monkeypatch.setenv("GATEPASS_MAIL_ALGORITHMS", "ES256, EdDSA")
    monkeypatch.setenv("GATEPASS_MAIL_MAX_STALENESS", "3600")
    monkeypatch.setenv("GATEPASS_MAIL_LAST_KNOWN_GOOD_PATH", str(tmp_path / "jwks.json"))
    monkeypatch.setenv("GATEPASS_VIDEO_AUDIENCE", "video")
    settings = edge_auth_settings("GATEPASS_MAIL_")
    assert settings.issuer == "https://auth.example.test"
    assert settings.audience == "mail"
    assert settings.algorithms == ("ES256", "EdDSA")
    assert settings.keyset_config().max_staleness == 3600
    assert settings.last_known_good_path == tmp_path / "jwks.json"
    assert settings.effective_realm == "mail"
    assert edge_auth_settings("GATEPASS_VIDEO_").audience == "video"


def test_values_given_in_code_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEPASS_MAIL_AUDIENCE", "mail")
    settings = edge_auth_settings("GATEPASS_MAIL_", audience="other", realm="Mail")
    assert (settings.audience, settings.effective_realm) == ("other", "Mail")


def test_an_edge_can_subclass_with_its_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    class VideoSettings(EdgeAuthSettings):
        model_config = SettingsConfigDict(env_prefix="GATEPASS_VIDEO_", extra="ignore")
        audience: str = "video"

    monkeypatch.setenv("GATEPASS_VIDEO_COOKIE_NAME", "gatepass_at")
    settings = VideoSettings()
    assert (settings.audience, settings.cookie_name) == ("video", "gatepass_at")


@pytest.mark.parametrize(
    "values",
    [
        {"algorithms": "HS256"},
        {"algorithms": ""},
        {"leeway": 3600},
        {"jwks_min_ttl": 600, "jwks_default_ttl": 300},
        {"refetch_cooldown": 0},
    ],
    ids=["hmac", "no-algorithm", "huge-leeway", "ttl-order", "no-cooldown"],
)
def test_unsafe_values_are_refused(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        EdgeAuthSettings(audience="mail", **values)  # type: ignore[arg-type]


def test_the_audience_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEPASS_EDGE_AUDIENCE", raising=False)
    with pytest.raises(ValidationError):
        edge_auth_settings("GATEPASS_EDGE_")


class DemoServiceSettings(EdgeServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEPASS_DEMO_", extra="ignore")
    audience: str = "demo"


def test_an_edge_in_production_refuses_an_http_issuer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its keys would come over plain http: anyone on the path could forge tokens."""
    monkeypatch.setenv("GATEPASS_DEMO_ISSUER", "http://auth.internal.test:8000")
    settings = DemoServiceSettings()
    assert settings.environment == "production"
    with pytest.raises(ConfigError) as refused:
        settings.check_production()
    message = str(refused.value)
    assert "GATEPASS_DEMO_ISSUER must be an https URL in production" in message
    assert "GATEPASS_DEMO_ALLOW_HTTP_ISSUER=true" in message
    assert "auth.internal.test" not in message  # a setting's value is never echoed


def test_the_default_issuer_is_refused_in_production() -> None:
    with pytest.raises(ConfigError):
        DemoServiceSettings().check_production()


@pytest.mark.parametrize(
    "env",
    [
        {"GATEPASS_DEMO_ISSUER": "https://auth.example.test"},
        {"GATEPASS_DEMO_ISSUER": "http://auth:8000", "GATEPASS_DEMO_ALLOW_HTTP_ISSUER": "true"},
        {
            "GATEPASS_DEMO_ISSUER": "http://127.0.0.1:8000",
            "GATEPASS_DEMO_ENVIRONMENT": "development",
        },
    ],
    ids=["https", "allowed", "development"],
)
def test_an_https_issuer_an_allowed_one_or_development_starts(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    DemoServiceSettings().check_production()  # raises nothing

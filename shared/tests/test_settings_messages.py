"""A setting the runner refuses is named, never echoed: not its value, nor any key inside it."""

from __future__ import annotations

import pytest
from pydantic_settings import SettingsConfigDict

from gatepass.runner import run_service
from gatepass.settings import ServiceSettings

SECRET = "s3cret-0123456789"


class MapSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEPASS_DEMO_", extra="ignore")
    grants: dict[str, list[str]] = {}
    secrets: dict[str, str] = {}


def never_served(app: object, **options: object) -> None:
    raise AssertionError("bad settings must stop the runner before it serves")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        # pydantic's location of an error inside a map is the key: part of the value.
        ("GATEPASS_DEMO_GRANTS", f'{{"{SECRET}": "not a list", "other": 1}}'),
        ("GATEPASS_DEMO_SECRETS", f'{{"{SECRET}": ["a value where a string goes"]}}'),
        ("GATEPASS_DEMO_MAX_BODY_BYTES", SECRET),
    ],
)
def test_a_setting_is_named_never_echoed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str
) -> None:
    monkeypatch.setattr("gatepass.runner.configure_logging", lambda *a, **k: None)
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as exited:
        run_service(lambda s: s, MapSettings, prog="demo", port=8009, argv=[], serve=never_served)
    assert exited.value.code == 2
    stderr = capsys.readouterr().err
    setting = variable.removeprefix("GATEPASS_DEMO_").lower()
    assert f"\n  {setting}: " in stderr
    assert stderr.count(f"{setting}:") == 1  # two entries wrong alike: one line
    assert SECRET not in stderr

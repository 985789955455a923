"""Settings refused at start-up, by ``gatepass-auth`` and by the operator command ``gatepass``:
exit code 2 and a message naming the setting, never its value (it may be a secret), and no
traceback; in production, no start without a key-encryption key or with a plain-http issuer.

In-process: ``gatepass-auth``'s ``main`` with the environment set and nothing served, the
command through typer's test runner; an exception that escaped would fail the test instead of
exiting 2. One case of each kind runs as a real process in ``tests/auth/test_settings_errors.py``.
"""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

import auth_service.__main__ as entry_point
from auth_service import cli
from gatepass.runner import run_service

SECRET = "TOPSECRET-0123456789"
PRODUCTION = {"GATEPASS_AUTH_ENVIRONMENT": "production"}
# Valid JSON of the wrong shape: pydantic's message would quote the input.
WRONG_SHAPE = {"GATEPASS_AUTH_INTROSPECTION_CLIENTS": f'{{"svc": ["{SECRET}"]}}'}
# Parses, but the start-up check refuses it (ConfigError).
BAD_KEY = PRODUCTION | {
    "GATEPASS_AUTH_ISSUER": "https://auth.example.com",
    "GATEPASS_AUTH_KEK": SECRET,
}
BAD_SETTINGS = {
    "wrong shape": (WRONG_SHAPE, "introspection_clients"),
    "bad key": (BAD_KEY, "GATEPASS_AUTH_KEK"),
}

Refusal = Callable[[dict[str, str]], str]


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str | None]:
    """Development, a fresh data folder; every other ``GATEPASS_*`` variable unset."""
    unset: dict[str, str | None] = {
        name: None for name in os.environ if name.startswith("GATEPASS_")
    }
    return unset | {
        "GATEPASS_AUTH_ENVIRONMENT": "development",
        "GATEPASS_AUTH_ISSUER": "http://127.0.0.1:1",
        "GATEPASS_AUTH_DATA_DIR": str(tmp_path / "auth-data"),
    }


def never_served(app: object, **options: object) -> None:
    raise AssertionError("refused settings must stop gatepass-auth before it serves")


@pytest.fixture
def service_refuses(
    base_env: dict[str, str | None],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Refusal:
    """``service_refuses(environment)``: ``gatepass-auth`` exits 2 on it; its stderr and stdout."""
    monkeypatch.setattr(
        entry_point, "run_service", functools.partial(run_service, serve=never_served)
    )

    def run(environment: dict[str, str]) -> str:
        for name, value in (base_env | environment).items():
            if value is None:
                monkeypatch.delenv(name)
            else:
                monkeypatch.setenv(name, value)
        with pytest.raises(SystemExit) as exited:
            entry_point.main(["--port", "1"])
        said = capsys.readouterr()
        assert exited.value.code == 2, said.err
        return said.err + said.out

    return run


@pytest.fixture
def command_refuses(base_env: dict[str, str | None]) -> Refusal:
    """``command_refuses(environment)``: ``gatepass users list`` exits 2; its stderr and stdout."""

    def run(environment: dict[str, str]) -> str:
        result = CliRunner().invoke(cli.app, ["users", "list"], env=base_env | environment)
        assert result.exit_code == 2, (result.stderr, result.exception)
        return result.stderr + result.stdout

    return run


@pytest.mark.parametrize("case", BAD_SETTINGS, ids=list(BAD_SETTINGS))
def test_gatepass_auth_names_a_bad_setting_never_its_value(
    service_refuses: Refusal, case: str
) -> None:
    environment, named = BAD_SETTINGS[case]
    said = service_refuses(environment)
    assert named in said
    assert SECRET not in said
    assert "Traceback" not in said


@pytest.mark.parametrize("case", BAD_SETTINGS, ids=list(BAD_SETTINGS))
def test_the_operator_command_names_a_bad_setting_never_its_value(
    command_refuses: Refusal, case: str
) -> None:
    environment, named = BAD_SETTINGS[case]
    said = command_refuses(environment)
    assert named in said
    assert SECRET not in said
    assert "Traceback" not in said


def test_production_refuses_a_plain_http_issuer(service_refuses: Refusal) -> None:
    # A good key ("A" * 43 would be 32 zero bytes, refused for itself): only the issuer is wrong.
    said = service_refuses(
        PRODUCTION
        | {
            "GATEPASS_AUTH_KEK": secrets.token_hex(32),
            "GATEPASS_AUTH_ISSUER": "http://plain.example.com",
        }
    )
    assert "https" in said

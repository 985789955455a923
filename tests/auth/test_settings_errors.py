"""A bad setting is one message naming it and exit code 2, never its value (it may be a secret).

``gatepass-auth`` used to print pydantic's error with the input value in it; the operator command
``gatepass`` too. Both now say which setting is wrong and why, and nothing of what it holds.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.procs import service_env

SECRET = "TOPSECRET-0123456789"
BAD_SETTINGS = {
    # Valid JSON of the wrong shape: pydantic's message would quote the input.
    "wrong shape": (
        {"GATEPASS_AUTH_INTROSPECTION_CLIENTS": f'{{"svc": ["{SECRET}"]}}'},
        "introspection_clients",
    ),
    # Not JSON at all: pydantic-settings' own error, once a traceback.
    "not json": ({"GATEPASS_AUTH_INTROSPECTION_CLIENTS": f"svc={SECRET}"}, "introspection_clients"),
    # Parses, but the start-up check refuses it (ConfigError).
    "bad key": (
        {
            "GATEPASS_AUTH_ENVIRONMENT": "production",
            "GATEPASS_AUTH_ISSUER": "https://auth.example.com",
            "GATEPASS_AUTH_KEK": SECRET,
        },
        "GATEPASS_AUTH_KEK",
    ),
}
COMMANDS = {
    "gatepass-auth": [sys.executable, "-m", "auth_service", "--port", "1"],
    "gatepass": [str(Path(sys.executable).with_name("gatepass")), "users", "list"],
}


@pytest.mark.parametrize("command", COMMANDS, ids=list(COMMANDS))
@pytest.mark.parametrize("case", BAD_SETTINGS, ids=list(BAD_SETTINGS))
def test_a_bad_setting_is_named_never_echoed(
    auth_env: dict[str, str], command: str, case: str
) -> None:
    overrides, named = BAD_SETTINGS[case]
    result = subprocess.run(
        COMMANDS[command],
        env=service_env(auth_env | overrides),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert named in result.stderr
    assert SECRET not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr

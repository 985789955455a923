"""Settings refused at start-up, as processes: exit code 2 and one message naming the setting,
never its value (it may be a secret), and no traceback.

``gatepass-auth`` used to print pydantic's error with the input value in it; the operator command
``gatepass`` too. Both now say which setting is wrong and why, and nothing of what it holds.

What a process adds is the exit itself: the status the interpreter ends with and what reaches its
stderr. One case of each kind runs here: a value that does not parse (pydantic-settings' own
error, once a traceback), for the service and for the command, and the service's production
check (no key-encryption key). Every other refused setting is tested in-process in
``auth-service/tests/test_settings_refused.py``. A process's life here is mostly its imports: the
module starts them side by side, and each test reads the outcome of its own.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.procs import service_env

SECRET = "TOPSECRET-0123456789"
NOT_JSON = {"GATEPASS_AUTH_INTROSPECTION_CLIENTS": f"svc={SECRET}"}
SERVICE = [sys.executable, "-m", "auth_service", "--port", "1"]
COMMAND = [str(Path(sys.executable).with_name("gatepass")), "users", "list"]
RUNS: dict[str, tuple[Sequence[str], Mapping[str, str]]] = {
    "gatepass-auth, not json": (SERVICE, NOT_JSON),
    "gatepass, not json": (COMMAND, NOT_JSON),
    "gatepass-auth, production without a key": (
        SERVICE,
        {"GATEPASS_AUTH_ENVIRONMENT": "production", "GATEPASS_AUTH_ISSUER": "https://a.example"},
    ),
}

Outcomes = dict[str, subprocess.CompletedProcess[str]]


def run(
    folder: Path, argv: Sequence[str], overrides: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    env = {
        "GATEPASS_AUTH_ENVIRONMENT": "development",
        "GATEPASS_AUTH_ISSUER": "http://127.0.0.1:1",
        "GATEPASS_AUTH_DATA_DIR": str(folder / "auth-data"),
        **overrides,
    }
    return subprocess.run(
        argv, env=service_env(env), capture_output=True, text=True, timeout=240, check=False
    )


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Outcomes:
    """Every run, side by side (each with a folder of its own); its outcome by name."""
    root = tmp_path_factory.mktemp("settings-errors")
    with ThreadPoolExecutor(max_workers=len(RUNS)) as pool:
        futures = {
            name: pool.submit(run, root / f"run-{index}", *planned)
            for index, (name, planned) in enumerate(RUNS.items())
        }
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("name", ["gatepass-auth, not json", "gatepass, not json"])
def test_a_bad_setting_is_named_never_echoed(outcomes: Outcomes, name: str) -> None:
    result = outcomes[name]
    assert result.returncode == 2, result.stderr
    assert "introspection_clients" in result.stderr
    assert SECRET not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_production_mode_refuses_to_start_without_a_key_encryption_key(
    outcomes: Outcomes,
) -> None:
    result = outcomes["gatepass-auth, production without a key"]
    assert result.returncode == 2, result.stderr
    assert "key-encryption key" in result.stderr
    assert "Traceback" not in result.stderr

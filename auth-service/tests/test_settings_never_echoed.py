"""``gatepass-auth`` with a bad setting: one message naming it and exit code 2, never what the
setting holds (some are secrets: the key-encryption key, a key file's content, client secrets).

In-process: ``main`` with the environment set, its stderr captured; nothing is served.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import pytest

import auth_service.__main__ as entry_point
from gatepass.runner import run_service

SECRET = "not-base64-secret-value"


def never_served(app: object, **options: object) -> None:
    raise AssertionError("bad settings must stop gatepass-auth before it serves")


@pytest.fixture
def refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[[dict[str, str]], str]:
    """``refused(environment)``: run ``gatepass-auth`` with it; its stderr, after exit code 2."""
    monkeypatch.setattr(
        entry_point, "run_service", functools.partial(run_service, serve=never_served)
    )
    monkeypatch.setattr("gatepass.runner.configure_logging", lambda *a, **k: None)
    monkeypatch.setenv("GATEPASS_AUTH_ENVIRONMENT", "development")
    monkeypatch.setenv("GATEPASS_AUTH_DATA_DIR", str(tmp_path / "data"))

    def run(environment: dict[str, str]) -> str:
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        with pytest.raises(SystemExit) as exited:
            entry_point.main(["--port", "1"])
        assert exited.value.code == 2
        return capsys.readouterr().err

    return run


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        pytest.param({"GATEPASS_AUTH_KEK": SECRET}, "GATEPASS_AUTH_KEK", id="kek"),
        pytest.param({"GATEPASS_AUTH_KEK": SECRET + "!!"}, "GATEPASS_AUTH_KEK", id="kek text"),
        pytest.param(
            {"GATEPASS_AUTH_ACCESS_TOKEN_TTL": SECRET}, "access_token_ttl", id="ttl not a number"
        ),
        pytest.param({"GATEPASS_AUTH_SELF_AUDIENCE": SECRET}, "self_audience", id="self audience"),
        pytest.param({"GATEPASS_AUTH_DEFAULT_ROLES": SECRET}, "default_roles", id="default roles"),
        pytest.param(
            {"GATEPASS_AUTH_ROLE_SCOPES": f'{{"{SECRET}": "mail:read"}}'},
            "role_scopes",
            id="role scopes",
        ),
    ],
)
def test_a_bad_setting_is_named_never_echoed(
    refused: Callable[[dict[str, str]], str], environment: dict[str, str], named: str
) -> None:
    stderr = refused(environment)
    assert stderr.startswith("gatepass-auth: ")
    assert named in stderr
    assert SECRET not in stderr


def test_a_key_file_s_content_is_never_echoed(
    refused: Callable[[dict[str, str]], str], tmp_path: Path
) -> None:
    key_file = tmp_path / "kek"
    key_file.write_text(SECRET + "!!\n")
    stderr = refused({"GATEPASS_AUTH_KEK_FILE": str(key_file)})
    assert "GATEPASS_AUTH_KEK_FILE" in stderr
    assert SECRET not in stderr

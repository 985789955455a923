"""``python -m edge_service_mail``: the command operators and the cross-service tests run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from edge_service_mail.__main__ import main
from gatepass.edgetest import child_service, free_port


def test_it_serves_migrates_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {
        "GATEPASS_MAIL_ISSUER": f"http://127.0.0.1:{free_port()}",  # nobody there
        "GATEPASS_MAIL_ALLOW_HTTP_ISSUER": "true",  # production mode, plain http on loopback
        "GATEPASS_MAIL_DATA_DIR": str(tmp_path / "data"),
        "GATEPASS_MAIL_LOG_JSON": "true",
    }
    with child_service("edge_service_mail", env, tmp_path / "mail.log") as mail:
        assert httpx.get(f"{mail.base_url}/about").json()["service"] == "mail"
        assert httpx.get(f"{mail.base_url}/readyz").status_code == 503  # no keys yet
    # uvicorn shuts down gracefully, then re-raises the signal it got.
    assert mail.returncode in {0, -signal.SIGTERM}, mail.output()
    assert "Application shutdown complete." in mail.output()
    assert '"logger": "gatepass.access"' in mail.output()
    assert (tmp_path / "data" / "mail.db").exists()


def test_bad_settings_exit_2_with_a_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEPASS_MAIL_MAX_STALENESS", "-5")
    with pytest.raises(SystemExit) as exited:
        main(["--port", "1"])
    assert exited.value.code == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("gatepass-mail: invalid settings")
    assert "max_staleness" in stderr


def test_with_no_environment_it_refuses_the_default_http_issuer(tmp_path: Path) -> None:
    """Production mode and the default ``http`` issuer: keys over plain http, refused at once."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEPASS_")}
    done = subprocess.run(
        [sys.executable, "-m", "edge_service_mail", "--port", "1"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "GATEPASS_MAIL_ISSUER must be an https URL in production" in done.stderr
    assert "GATEPASS_MAIL_ALLOW_HTTP_ISSUER=true" in done.stderr
    assert not (tmp_path / "data").exists()  # refused before anything started

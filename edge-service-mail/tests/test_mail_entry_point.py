"""``python -m edge_service_mail``: the command operators and the cross-service tests run."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from edge_service_mail.__main__ import main
from gatepass.edgetest import child_service, free_port


def test_it_serves_migrates_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {
        "GATEPASS_MAIL_ISSUER": f"http://127.0.0.1:{free_port()}",  # nobody there
        "GATEPASS_MAIL_DATA_DIR": str(tmp_path / "data"),
        "GATEPASS_MAIL_LOG_JSON": "true",
    }
    with child_service("edge_service_mail", env, tmp_path / "mail.log") as mail:
        assert httpx.get(f"{mail.base_url}/about").json()["service"] == "mail"
        assert httpx.get(f"{mail.base_url}/readyz").status_code == 503  # no keys yet
    # uvicorn shuts down gracefully, then re-raises the signal it got.
    assert mail.process.returncode in {0, -signal.SIGTERM}, mail.output()
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

"""``python -m edge_service_video``: the command operators and the cross-service tests run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from edge_service_video.__main__ import main
from gatepass.edgetest import child_service, free_port


def test_it_serves_on_the_given_port(tmp_path: Path) -> None:
    env = {
        "GATEPASS_VIDEO_ISSUER": f"http://127.0.0.1:{free_port()}",  # nobody there
        "GATEPASS_VIDEO_ALLOW_HTTP_ISSUER": "true",  # production mode, plain http on loopback
        "GATEPASS_VIDEO_DATA_DIR": str(tmp_path / "data"),
    }
    with child_service("edge_service_video", env, tmp_path / "video.log") as video:
        assert httpx.get(f"{video.base_url}/healthz").status_code == 200
        ready = httpx.get(f"{video.base_url}/readyz").json()
        assert ready["checks"] == {"keys": False, "database": True}
    assert (tmp_path / "data" / "video.db").exists()


def test_bad_settings_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEPASS_VIDEO_LOG_LEVEL", "chatty")
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2


def test_with_no_environment_it_refuses_the_default_http_issuer(tmp_path: Path) -> None:
    """Production mode and the default ``http`` issuer: keys over plain http, refused at once."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEPASS_")}
    done = subprocess.run(
        [sys.executable, "-m", "edge_service_video", "--port", "1"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "GATEPASS_VIDEO_ISSUER must be an https URL in production" in done.stderr
    assert "GATEPASS_VIDEO_ALLOW_HTTP_ISSUER=true" in done.stderr
    assert not (tmp_path / "data").exists()  # refused before anything started

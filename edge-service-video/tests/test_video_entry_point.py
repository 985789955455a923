"""``python -m edge_service_video``: the command operators and the cross-service tests run."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from edge_service_video.__main__ import main
from gatepass.edgetest import child_service, free_port


def test_it_serves_on_the_given_port(tmp_path: Path) -> None:
    env = {
        "GATEPASS_VIDEO_ISSUER": f"http://127.0.0.1:{free_port()}",  # nobody there
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

"""``gatepass.runner.run_service``: flags, settings errors, and what uvicorn is asked to do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic_settings import SettingsConfigDict

from gatepass.edgetest import child_service
from gatepass.runner import run_service
from gatepass.service import EdgeServiceSettings


class DemoSettings(EdgeServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEPASS_DEMO_", extra="ignore")
    audience: str = "demo"


class Served:
    """Stands in for ``uvicorn.run``."""

    def __init__(self) -> None:
        self.app: object = None
        self.options: dict[str, Any] = {}

    def __call__(self, app: object, **options: Any) -> None:
        self.app, self.options = app, options


def demo_app(settings: DemoSettings) -> tuple[str, str]:
    return ("app for", settings.audience)


@pytest.fixture(autouse=True)
def _keep_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """run_service configures the root logger: leave pytest's as it was."""
    monkeypatch.setattr("gatepass.runner.configure_logging", lambda *a, **k: None)


def run(argv: list[str]) -> Served:
    served = Served()
    run_service(demo_app, DemoSettings, prog="gatepass-demo", port=8009, argv=argv, serve=served)
    return served


def test_defaults_and_what_uvicorn_is_told() -> None:
    served = run([])
    assert served.app == ("app for", "demo")
    assert served.options == {
        "host": "127.0.0.1",
        "port": 8009,
        "lifespan": "on",
        "log_config": None,
        "access_log": False,
        "server_header": False,
        "proxy_headers": True,
        "timeout_graceful_shutdown": 5,
    }


def test_host_and_port_flags() -> None:
    served = run(["--host", "0.0.0.0", "--port", "9100"])  # noqa: S104 (only parsed)
    assert (served.options["host"], served.options["port"]) == ("0.0.0.0", 9100)  # noqa: S104


def test_bad_settings_are_one_message_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEPASS_DEMO_MAX_STALENESS", "-123456")
    with pytest.raises(SystemExit) as exited:
        run([])
    assert exited.value.code == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("gatepass-demo: invalid settings:\n  max_staleness: ")
    assert "-123456" not in stderr  # values are never echoed (some are secrets)


def test_a_bad_flag_is_argparse_s_exit_2() -> None:
    with pytest.raises(SystemExit) as exited:
        run(["--port", "eighty"])
    assert exited.value.code == 2


DEMO_MODULE = """
from gatepass.runner import run_service
from gatepass.service import EdgeServiceSettings


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})


def settings():
    return EdgeServiceSettings(audience="demo", _env_prefix="GATEPASS_DEMO_")


run_service(lambda s: app, settings, prog="gatepass-demo", port=8009)
"""


def test_a_child_service_listens_then_stops(tmp_path: Path) -> None:
    (tmp_path / "demo_service.py").write_text(DEMO_MODULE)
    env = {"PYTHONPATH": str(tmp_path), "GATEPASS_DEMO_LOG_JSON": "true"}
    with child_service("demo_service", env, tmp_path / "demo.log") as demo:
        assert demo.process.poll() is None
    assert '"message": "Application shutdown complete."' in demo.output()


def test_a_child_that_cannot_start_says_why(tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError, match="No module named"),
        child_service("no_such_module_here", {}, tmp_path / "none.log"),
    ):
        pass

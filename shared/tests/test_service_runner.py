"""``gatepass.runner.run_service``: flags, settings errors, and what uvicorn is asked to do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic_settings import SettingsConfigDict

from gatepass.edgetest import child_service
from gatepass.runner import run_service
from gatepass.server import DESCRIPTOR_RESERVE, LimitedHttpProtocol, ServerLimits, effective_limit
from gatepass.service import EdgeServiceSettings
from gatepass.settings import ConfigError


class DemoSettings(EdgeServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEPASS_DEMO_", extra="ignore")
    audience: str = "demo"
    issuer: str = "https://auth.example.test"  # production mode (the default) wants https


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
    protocol = served.options.pop("http")
    assert served.options == {
        "host": "127.0.0.1",
        "port": 8009,
        "lifespan": "on",
        "log_config": None,
        "access_log": False,
        "server_header": False,
        "proxy_headers": False,  # never uvicorn's FORWARDED_ALLOW_IPS: gatepass.proxies decides
        "ws": "none",
        "timeout_keep_alive": 5,
        "timeout_graceful_shutdown": 5,
    }
    assert issubclass(protocol, LimitedHttpProtocol)
    assert protocol.server_limits == ServerLimits(
        max_header_bytes=32 * 1024, header_timeout=10.0, body_timeout=30.0, concurrency_limit=512
    )


def test_the_server_limits_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "MAX_HEADER_BYTES": "16384",
        "HEADER_TIMEOUT": "2.5",
        "BODY_TIMEOUT": "7",
        "KEEP_ALIVE_TIMEOUT": "3",
        "CONCURRENCY_LIMIT": "40",
    }.items():
        monkeypatch.setenv(f"GATEPASS_DEMO_{name}", value)
    served = run([])
    assert served.options["timeout_keep_alive"] == 3
    assert served.options["http"].server_limits == ServerLimits(16384, 2.5, 7.0, 40)


def test_the_concurrency_limit_leaves_descriptors_for_the_rest() -> None:
    assert effective_limit(512, None) == 512
    assert effective_limit(512, 4096) == 512
    assert effective_limit(512, 128) == 128 - DESCRIPTOR_RESERVE  # 140 half-open would not fit
    assert effective_limit(512, 10) == 1


def test_a_start_up_check_that_refuses_is_one_message_and_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def check(settings: DemoSettings) -> None:
        raise ConfigError("GATEPASS_DEMO_THING is required in production")

    served = Served()
    with pytest.raises(SystemExit) as exited:
        run_service(
            demo_app,
            DemoSettings,
            prog="gatepass-demo",
            port=8009,
            argv=[],
            check=check,
            serve=served,
        )
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "gatepass-demo: GATEPASS_DEMO_THING is required in production\n"
    )
    assert served.app is None  # nothing listened


def test_an_http_issuer_in_production_is_one_message_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The runner applies the settings' own production check, with no ``check`` passed."""
    monkeypatch.setenv("GATEPASS_DEMO_ISSUER", "http://auth.internal.test")
    served = Served()
    with pytest.raises(SystemExit) as exited:
        run_service(demo_app, DemoSettings, prog="gatepass-demo", port=8009, argv=[], serve=served)
    assert exited.value.code == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("gatepass-demo: GATEPASS_DEMO_ISSUER must be an https URL")
    assert "GATEPASS_DEMO_ALLOW_HTTP_ISSUER=true" in stderr
    assert "auth.internal.test" not in stderr
    assert served.app is None  # nothing listened
    monkeypatch.setenv("GATEPASS_DEMO_ALLOW_HTTP_ISSUER", "true")
    assert run([]).app == ("app for", "demo")


def test_a_value_that_does_not_parse_is_named_not_echoed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEPASS_DEMO_ALGORITHMS", "ES256")
    monkeypatch.setenv("GATEPASS_DEMO_TRUSTED_PROXIES", "10.0.0.0/8, s3cret-not-an-address")
    with pytest.raises(SystemExit) as exited:
        run([])
    assert exited.value.code == 2
    stderr = capsys.readouterr().err
    assert "trusted_proxies: Value error, entry 2 is not an IP address" in stderr
    assert "s3cret" not in stderr


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
    return EdgeServiceSettings(
        audience="demo", issuer="https://auth.example.test", _env_prefix="GATEPASS_DEMO_"
    )


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

"""The container tests' images (built once a run), and their report: each container's last log
lines when a test fails, how long each phase took (building, starting, restarting) at the end."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from tests.deploy.containers import build_images, run

TIMINGS = pytest.StashKey[dict[str, float]]()


@pytest.fixture(scope="session")
def images(request: pytest.FixtureRequest) -> dict[str, float]:
    """Build the images (once a run); the timings of the run."""
    timings = request.config.stash[TIMINGS] = build_images()
    return timings


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    funcargs = getattr(item, "funcargs", {})
    stack, played = funcargs.get("stack"), funcargs.get("played")
    if report.failed and played is not None:
        for pod in played[0]:
            if pod["kind"] == "Pod":
                name = f"{pod['metadata']['name']}-{pod['spec']['containers'][0]['name']}"
                logs = run(["podman", "logs", "--tail", "40", name], check=False).stdout
                report.sections.append((f"log of {name}", logs))
    if report.failed and stack is not None:
        report.sections.append(("the compose stack", stack.compose.report()))
    return report


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    timings = config.stash.get(TIMINGS, None)
    if timings:
        terminalreporter.section("container test timings")
        for name, seconds in timings.items():
            terminalreporter.write_line(f"{name:<28} {seconds:7.1f} s")

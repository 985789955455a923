"""Fixtures for the tests that drive headless Chromium against a real stack on loopback.

- ``chromium`` (module): one Chromium per test file (a launch costs a second or two), Debian's
  ``/usr/bin/chromium`` (or ``GATEPASS_CHROMIUM``) driven by Playwright, which never downloads a
  browser here. Missing: the tests are skipped, or fail when ``GATEPASS_REQUIRE_BROWSER=1`` (CI),
  as the interop tests treat node.
- ``context``: a fresh browser context (its own cookies: a person on one device) per test.
- ``shots``: screenshots of each step, kept as artifacts in
  ``test-artifacts/browser/<test name>/NN-step.png`` at the repository root.
- ``stack`` (package): the auth service (development settings, cookies without ``Secure`` on a
  plain-HTTP loopback issuer, the page's buttons calling mail's ``/inbox`` and video's
  ``/videos``) and both edges, started once for the package; its clients file registers the edges as
  they ask, and the relying parties the tests run as apps with their redirect URIs.
- ``node_rp``, ``authlib_rp`` (module): those relying parties, running.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.edges.conftest import STACK_EDGES, EdgeLauncher, auth_process
from tests.support.identities import clients_file
from tests.support.node import NODE_DIR, node_or_skip
from tests.support.procs import ServiceProcess, free_port, report_logs_of

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"
AUTHLIB_RP = Path(__file__).with_name("authlib_rp.py")
DEFAULT_CHROMIUM = "/usr/bin/chromium"
# What a step may wait for: generous for a busy 2-core machine, short enough to fail fast.
STEP_TIMEOUT_MS = 15_000
AUTHLIB_SECRET = "authlib-rp-test-secret-0123456789abcdef"


@dataclass(frozen=True)
class App:
    """A relying party registered at the auth service: where it listens and what it declares."""

    client_id: str
    port: int
    secret: str | None = None  # client_secret_basic; None: a public client

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def redirect_uri(self) -> str:
        return f"{self.base_url}/callback"

    @property
    def post_logout_uri(self) -> str:
        return f"{self.base_url}/signed-out"

    def declaration(self) -> dict[str, object]:
        entry: dict[str, object] = {
            "client_id": self.client_id,
            "kind": "app",
            "auth_method": "none" if self.secret is None else "client_secret_basic",
            "audiences": ["mail", "video"],
            "scopes": ["mail:read", "video:read"],
            "redirect_uris": [self.redirect_uri],
            "post_logout_redirect_uris": [self.post_logout_uri],
        }
        if self.secret is not None:
            entry["secret_sha256"] = hashlib.sha256(self.secret.encode()).hexdigest()
        return entry


@dataclass(frozen=True)
class Stack:
    """The auth service, both edges, and the apps its clients file registers."""

    auth: ServiceProcess
    mail: ServiceProcess
    video: ServiceProcess
    node_app: App  # openid-client, public
    authlib_app: App  # authlib, confidential
    probe_app: App  # a public client whose redirect URI nothing serves: codes for httpx

    @property
    def services(self) -> tuple[ServiceProcess, ...]:
        return (self.auth, self.mail, self.video)


def executable_or_skip() -> str:
    """Chromium's path, or a skip (a failure under ``GATEPASS_REQUIRE_BROWSER=1``)."""
    path = os.environ.get("GATEPASS_CHROMIUM", DEFAULT_CHROMIUM)
    if not Path(path).is_file():
        if os.environ.get("GATEPASS_REQUIRE_BROWSER") == "1":
            pytest.fail(f"Chromium is required here (GATEPASS_REQUIRE_BROWSER=1): no {path}")
        pytest.skip(f"Chromium is not installed ({path})")
    return path


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip (or fail) a test that needs Chromium before its stack is started for nothing."""
    if "chromium" in getattr(item, "fixturenames", ()):
        executable_or_skip()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    path = executable_or_skip()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def context(chromium: Browser) -> Iterator[BrowserContext]:
    """A person's browser: cookies of its own, English, a viewport screenshots can show."""
    context = chromium.new_context(locale="en-US", viewport={"width": 1100, "height": 900})
    context.set_default_timeout(STEP_TIMEOUT_MS)
    yield context
    context.close()


Shots = Callable[[Page, str], None]


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    """``shots(page, "logged-in")`` saves ``NN-logged-in.png`` in this test's artifact folder
    (emptied first, so the folder shows the last run only)."""
    folder = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    count = 0

    def take(page: Page, step: str) -> None:
        nonlocal count
        count += 1
        page.screenshot(path=str(folder / f"{count:02d}-{step}.png"), full_page=True)

    return take


def write_clients_file(folder: Path, apps: list[App]) -> Path:
    """The edges' entries (as tests/support/identities.py declares them) plus the apps'."""
    edges = json.loads(clients_file(folder).read_text())["clients"]
    path = folder / "browser-clients.json"
    path.write_text(json.dumps({"clients": [*edges, *(app.declaration() for app in apps)]}))
    return path


@pytest.fixture(scope="package")
def browser_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """Started on first use, stopped after the package's last test (a start costs seconds; run
    on two workers, each file starts its own)."""
    folder = tmp_path_factory.mktemp("browser-stack")
    port = free_port()
    node_app = App("node-rp", free_port())
    authlib_app = App("authlib-rp", free_port(), secret=AUTHLIB_SECRET)
    probe_app = App("probe-app", free_port())
    started: list[ServiceProcess] = []
    try:
        # The edges' imports run while the auth service starts; they are ready once it is (a
        # short cooldown: the first JWKS fetch, before the auth service listens, fails).
        launcher = EdgeLauncher(request.node, folder, port, started)
        mail, video = launcher.launch_pair(STACK_EDGES)
        auth = auth_process(
            folder,
            port,
            {
                "GATEPASS_AUTH_CLIENTS_FILE": str(
                    write_clients_file(folder, [node_app, authlib_app, probe_app])
                ),
                "GATEPASS_AUTH_COOKIE_SECURE": "false",
                "GATEPASS_AUTH_PAGE_CALLS": json.dumps(
                    {"mail": mail.url("/inbox"), "video": video.url("/videos")}
                ),
            },
        )
        started.insert(0, auth)
        auth.start()
        for service in started:
            service.wait_ready()
        yield Stack(auth, mail, video, node_app, authlib_app, probe_app)
    finally:
        for service in reversed(started):
            service.stop()


@pytest.fixture
def stack(request: pytest.FixtureRequest, browser_stack: Stack) -> Stack:
    """The file's stack; a failing test's report shows each service's log tail."""
    for service in browser_stack.services:
        report_logs_of(request.node, service)
    return browser_stack


def start_rp(
    name: str, command: list[str], app: App, *, env: dict[str, str], folder: Path, listening: str
) -> ServiceProcess:
    """A relying party as a process, ready once it has said it listens and answers ``/ready``."""
    service = ServiceProcess(
        name,
        command,
        base_url=app.base_url,
        log_dir=folder / "logs",
        env=env,
        cwd=folder,
        ready_path="/ready",
        listening_log=listening,
    )
    service.start()
    service.wait_ready()
    return service


@pytest.fixture(scope="module")
def node_rp_process(
    browser_stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    node = node_or_skip()
    app = browser_stack.node_app
    env = {
        "ISSUER": browser_stack.auth.base_url,
        "CLIENT_ID": app.client_id,
        "PORT": str(app.port),
        "SCOPE": "openid email mail:read",
    }
    folder = tmp_path_factory.mktemp("node-rp")
    command = [node, str(NODE_DIR / "relying_party.mjs")]
    service = start_rp(
        "node-rp", command, app, env=env, folder=folder, listening="relying party listening on"
    )
    yield service
    service.stop()


@pytest.fixture(scope="module")
def authlib_rp_process(
    browser_stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    app = browser_stack.authlib_app
    env = {
        "RP_ISSUER": browser_stack.auth.base_url,
        "RP_CLIENT_ID": app.client_id,
        "RP_CLIENT_SECRET": AUTHLIB_SECRET,
        "RP_PORT": str(app.port),
        "RP_SCOPE": "openid email mail:read",
    }
    folder = tmp_path_factory.mktemp("authlib-rp")
    command = [sys.executable, str(AUTHLIB_RP)]
    service = start_rp(
        "authlib-rp", command, app, env=env, folder=folder, listening="Uvicorn running on"
    )
    yield service
    service.stop()


@pytest.fixture
def node_rp(request: pytest.FixtureRequest, node_rp_process: ServiceProcess) -> ServiceProcess:
    report_logs_of(request.node, node_rp_process)
    return node_rp_process


@pytest.fixture
def authlib_rp(
    request: pytest.FixtureRequest, authlib_rp_process: ServiceProcess
) -> ServiceProcess:
    report_logs_of(request.node, authlib_rp_process)
    return authlib_rp_process

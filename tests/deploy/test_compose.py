"""The images and ``deploy/compose.yaml``, run for real under podman (see deploy/README.md).

Builds the three service images (and a stand-in for the official PostgreSQL image, which cannot be
pulled here), starts the compose stack under a project name of its own with the secrets
``deploy/make-secrets.sh`` makes (run in a temporary folder), and talks to it only through the
ports it publishes on 127.0.0.1:

- sign up, log in, call both edges; create an admin with the operator command in the container;
- the edges call each other with the identities make-secrets.sh made: an upload at video puts a
  notice into the uploader's mail inbox, a message at mail points at that video;
- stop the auth container: both edges still accept the tokens they hold keys for;
- start it again: access and refresh tokens issued before the stop still work, because keys and
  sessions live in PostgreSQL (a restart logs no one out).

Expensive (a run builds four images): it runs only with ``GATEPASS_CONTAINER_TESTS=1`` and
podman and podman-compose on PATH. ``bash .ci/containers.sh test`` sets the machine up and runs it.
The whole stack is removed afterwards (``down -v``, then ``podman rm -f`` of anything left), pass
or fail; the images stay for the other container tests of the run, and ``.ci/containers.sh``
removes them (and the build's dangling stage images) once pytest is done.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.deploy.containers import (
    CONTAINER_TESTS,
    POSTGRES_IMAGE,
    REPO,
    TAG,
    CommandError,
    ComposeStack,
    wait_ready,
)
from tests.deploy.peers import check_upload_notice_and_video_in_mail
from tests.support.auth_client import STRONG_PASSWORD, bearer, login, new_user, refresh
from tests.support.procs import free_port

pytestmark = CONTAINER_TESTS

SERVICES = ("auth", "mail", "video")
EDGE_ROUTES = {"mail": "/inbox", "video": "/videos"}
READY_TIMEOUT = 180.0


@dataclass
class Stack:
    compose: ComposeStack
    urls: dict[str, str]
    timings: dict[str, float]

    def client(self, service: str) -> httpx.Client:
        return httpx.Client(base_url=self.urls[service], timeout=10.0)


def compose_env(workdir: Path, ports: dict[str, int]) -> dict[str, str]:
    """A user's deploy/.env, made by deploy/make-secrets.sh in a copy of the deploy folder under
    ``workdir`` (the script writes next to itself), its files named by absolute paths; then
    this run's images, ports and issuer."""
    folder = workdir / "deploy"
    folder.mkdir()
    for script in ("make-secrets.sh", "client-keys.sh"):
        shutil.copy2(REPO / "deploy" / script, folder / script)
    subprocess.run(
        ["sh", str(folder / "make-secrets.sh")], capture_output=True, check=True, timeout=60
    )
    env = {}
    for line in (folder / ".env").read_text().splitlines():
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            env[key] = str(folder / value) if value.startswith("./") else value
    env |= {
        "POSTGRES_IMAGE": POSTGRES_IMAGE,
        "GATEPASS_ISSUER": f"http://127.0.0.1:{ports['auth']}",
        "GATEPASS_AUTH_IMAGE": f"localhost/gatepass-auth:{TAG}",
        "GATEPASS_MAIL_IMAGE": f"localhost/gatepass-mail:{TAG}",
        "GATEPASS_VIDEO_IMAGE": f"localhost/gatepass-video:{TAG}",
        "GATEPASS_BIND": "127.0.0.1",
    }
    for service in SERVICES:
        env[f"GATEPASS_{service.upper()}_PORT"] = str(ports[service])
    return env


@pytest.fixture(scope="module")
def stack(images: dict[str, float], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    timings = images
    workdir = tmp_path_factory.mktemp("compose")
    ports = {service: free_port() for service in SERVICES}
    compose = ComposeStack(
        f"gatepass-test-{secrets.token_hex(3)}",
        REPO / "deploy" / "compose.yaml",
        compose_env(workdir, ports),
        workdir,
    )
    urls = {service: f"http://127.0.0.1:{port}" for service, port in ports.items()}
    try:
        started = time.monotonic()
        try:
            compose.up(timeout=READY_TIMEOUT)
            for service in SERVICES:
                wait_ready(f"{urls[service]}/readyz", timeout=READY_TIMEOUT)
        except (CommandError, TimeoutError) as exc:
            pytest.fail(f"the stack did not come up: {exc}\n\n{compose.report()}", pytrace=False)
        timings["up until all ready"] = time.monotonic() - started
        yield Stack(compose, urls, timings)
    finally:
        started = time.monotonic()
        compose.down()
        timings["down -v"] = time.monotonic() - started


def get(client: httpx.Client, path: str, token: str) -> httpx.Response:
    return client.get(path, headers=bearer(token))


def assert_edges_accept(stack: Stack, token: str) -> None:
    for edge, path in EDGE_ROUTES.items():
        with stack.client(edge) as client:
            response = get(client, path, token)
            assert response.status_code == 200, (
                f"{edge} {path}: {response.status_code} {response.text}"
            )


def test_the_containers_run_as_a_non_root_user_on_a_read_only_root(stack: Stack) -> None:
    for service in SERVICES:
        info: dict[str, Any] = stack.compose.inspect(service)
        assert info["Config"]["User"] == "10001:10001", service
        assert info["HostConfig"]["ReadonlyRootfs"] is True, service
        assert "no-new-privileges" in " ".join(info["HostConfig"]["SecurityOpt"]), service
        env = info["Config"]["Env"]
        # The KEK and the edges' keys are mounted files, never variables.
        assert not [line for line in env if "KEK=" in line], service
        assert not [line for line in env if '"d"' in line], service
        # Set by the one Dockerfile under the service's own prefix (its PREFIX build argument).
        assert f"GATEPASS_{service.upper()}_DATA_DIR=/var/lib/gatepass" in env, service


def test_sign_up_log_in_and_call_both_edges(stack: Stack) -> None:
    with stack.client("auth") as auth:
        _, user_id, tokens = new_user(auth, "compose")
        me = get(auth, "/me", tokens["access_token"])
        assert me.status_code == 200, me.text
        assert me.json()["id"] == user_id
    assert_edges_accept(stack, tokens["access_token"])
    for edge, path in EDGE_ROUTES.items():
        with stack.client(edge) as client:
            assert client.get(path).status_code == 401, edge


def test_the_web_page_calls_both_edges_for_whoever_signed_in(stack: Stack) -> None:
    """The page at /app across containers: its sign-in form, then its buttons, which the auth
    service answers by calling mail and video on the private network (``PAGE_CALLS``). Its
    cookies are Secure (production), so they are sent by hand over this plain-HTTP loopback."""
    with stack.client("auth") as auth:
        email, _, _ = new_user(auth, "page")
        form = auth.get("/app/login")
        cookies = set_cookies(form)
        signed_in = auth.post(
            "/app/login",
            data={"email": email, "password": STRONG_PASSWORD, "csrf_token": csrf_of(form.text)},
            headers={"Cookie": cookie_header(cookies)},
        )
        assert signed_in.status_code == 303, signed_in.text
        cookies.update(set_cookies(signed_in))
        assert {"__Host-gp_access", "__Secure-gp_refresh", "__Host-gp_csrf"} <= cookies.keys()
        page = auth.get("/app", headers={"Cookie": cookie_header(cookies)})
        assert page.status_code == 200
        for edge in ("mail", "video"):
            call = auth.post(
                f"/app/api/call/{edge}",
                headers={"Cookie": cookie_header(cookies), "X-CSRF-Token": csrf_of(page.text)},
            )
            assert call.status_code == 200, call.text
            assert call.json()["status"] == 200, call.text


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """The cookies a response sets, by name."""
    pairs = (
        line.split(";", 1)[0].split("=", 1) for line in response.headers.get_list("set-cookie")
    )
    return {name.strip(): value for name, value in pairs}


def cookie_header(cookies: dict[str, str]) -> str:
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


def csrf_of(page: str) -> str:
    """The CSRF token a page of ours carries (its ``<meta name="csrf-token">``)."""
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
    assert match is not None, "the page carries no CSRF token"
    return match.group(1)


def test_the_operator_command_creates_an_admin_in_the_auth_container(stack: Stack) -> None:
    email, password = f"admin-{secrets.token_hex(4)}@example.com", STRONG_PASSWORD
    stack.compose.exec(
        "auth", "gatepass", "admin", "create", email, env={"GATEPASS_ADMIN_PASSWORD": password}
    )
    with stack.client("auth") as auth:
        assert "admin" in login(auth, email, password)["scope"].split()


def test_an_upload_notifies_the_uploader_in_mail_and_a_message_points_at_the_video(
    stack: Stack,
) -> None:
    with stack.client("auth") as auth:
        _, user_id, tokens = new_user(auth, "peers")
    with stack.client("mail") as mail, stack.client("video") as video:
        check_upload_notice_and_video_in_mail(mail, video, tokens["access_token"], user_id)


def test_edges_verify_while_auth_is_stopped_and_tokens_survive_its_restart(stack: Stack) -> None:
    with stack.client("auth") as auth:
        email, _, tokens = new_user(auth, "restart")
        unseen = login(auth, email)  # shown to no edge before auth stops: no cached verdict
    assert_edges_accept(stack, tokens["access_token"])

    started = time.monotonic()
    stack.compose.stop("auth")
    stack.timings["stop auth"] = time.monotonic() - started
    assert stack.compose.state("auth") == "exited"
    with pytest.raises(httpx.TransportError), stack.client("auth") as auth:
        auth.get("/healthz")
    assert_edges_accept(stack, tokens["access_token"])
    assert_edges_accept(stack, unseen["access_token"])  # verified with the keys they hold

    started = time.monotonic()
    stack.compose.start("auth")
    stack.compose.wait_healthy("auth", timeout=READY_TIMEOUT)
    wait_ready(f"{stack.urls['auth']}/readyz", timeout=READY_TIMEOUT)
    stack.timings["restart auth until ready"] = time.monotonic() - started

    with stack.client("auth") as auth:
        me = get(auth, "/me", tokens["access_token"])
        assert me.status_code == 200, me.text  # the signing key came back from PostgreSQL
        renewed = refresh(auth, tokens["refresh_token"])
        assert renewed.status_code == 200, renewed.text  # so did the session
    assert_edges_accept(stack, renewed.json()["access_token"])

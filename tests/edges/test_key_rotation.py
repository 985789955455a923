"""A key rotated in at the issuer: no valid request fails at either edge, during or after.

Several clients keep getting fresh tokens (refresh, and now and then a new login) and send each to
both edges, with the previous one, while the operator rotates the signing key.

Real processes: one auth service for the module (its JWKS lives 3 s, a new key is published
exactly one lifetime before it signs, it checks its keys every 0.2 s), and a pair of edges per
test. The operator's rotation runs from this process as ``gatepass keys rotate`` runs it (the
service's parts on the same data, no loops; the command itself is tested in
``auth-service/tests/test_operator_commands.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from auth_service.app import running
from tests.edges.common import describe
from tests.edges.conftest import EDGES, EdgeLauncher, auth_process
from tests.support.auth_client import STRONG_PASSWORD, bearer, jose_part, new_email
from tests.support.inprocess import auth_settings
from tests.support.metrics import issuer_jwks_requests
from tests.support.procs import ServiceProcess, free_port, report_logs_of

CLIENTS = 4
WARM_UP = 1.5  # at least this much traffic before the rotation (past the edges' first cooldown)
AFTER_SWITCH = 2.0  # seconds of traffic once the new key signs
DEADLINE = 30.0
LOGIN_EVERY = 8  # one new login per this many refreshes
JWKS_MAX_AGE = 3
KEY_CHECK_INTERVAL = 0.2


@dataclass
class Issuer:
    """The module's auth service, and where its data lives (for the operator's rotation)."""

    service: ServiceProcess
    port: int
    folder: Path

    async def rotate(self, *, immediately: bool) -> None:
        """``gatepass keys rotate [--now]``: the service's parts on its data, a forced rotation."""
        settings = auth_settings(
            self.folder,
            None,
            jwks_max_age=JWKS_MAX_AGE,
            key_publish_margin=0,
            key_check_interval=KEY_CHECK_INTERVAL,
        )
        async with running(settings, background=False) as operator:
            await operator.keys.rotate(immediately=immediately)


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Issuer]:
    folder = tmp_path_factory.mktemp("key-rotation")
    settings = {
        "GATEPASS_AUTH_JWKS_MAX_AGE": str(JWKS_MAX_AGE),
        "GATEPASS_AUTH_KEY_PUBLISH_MARGIN": "0",
        "GATEPASS_AUTH_KEY_CHECK_INTERVAL": str(KEY_CHECK_INTERVAL),
    }
    port = free_port()
    with auth_process(folder, port, settings) as service:
        service.wait_ready()
        yield Issuer(service, port, folder)


@pytest.fixture
def auth(request: pytest.FixtureRequest, issuer: Issuer) -> ServiceProcess:
    report_logs_of(request.node, issuer.service)
    return issuer.service


@pytest.fixture
def launcher(
    request: pytest.FixtureRequest, tmp_path: Path, issuer: Issuer
) -> Iterator[EdgeLauncher]:
    """This test's edges, pointed at the module's auth service; stopped when the test ends."""
    started: list[ServiceProcess] = []
    yield EdgeLauncher(request.node, tmp_path, issuer.port, started)
    for service in reversed(started):
        service.stop()


@dataclass(frozen=True)
class Answer:
    edge: str
    kid: str
    status: int
    detail: str
    previous: bool  # the client's previous token, sent again


@dataclass
class Traffic:
    old_kid: str
    answers: list[Answer] = field(default_factory=list)
    switched_at: float | None = None  # when a token signed by another key first came back

    def warmed(self) -> bool:
        """Each edge has let in at least one old-key token per client."""
        old = Counter(a.edge for a in self.answers if a.kid == self.old_kid and a.status == 200)
        return all(old[edge.name] >= CLIENTS for edge in EDGES)

    def done(self) -> bool:
        return self.switched_at is not None and time.monotonic() > self.switched_at + AFTER_SWITCH


async def client_loop(
    auth: ServiceProcess, services: dict[str, ServiceProcess], traffic: Traffic, until: float
) -> None:
    """One user's device: a session kept fresh, each new token sent to both edges."""
    async with (
        httpx.AsyncClient(base_url=auth.base_url, timeout=10) as issuer,
        httpx.AsyncClient(timeout=10) as edges,
    ):
        email = new_email("rotation")
        credentials = {"email": email, "password": STRONG_PASSWORD}
        assert (await issuer.post("/signup", json=credentials)).status_code == 201
        tokens = (await issuer.post("/login", json=credentials)).json()
        previous = tokens["access_token"]
        rounds = 0
        while not traffic.done() and time.monotonic() < until:
            rounds += 1
            if rounds % LOGIN_EVERY == 0:
                answer = await issuer.post("/login", json=credentials)
            else:
                form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
                answer = await issuer.post("/token", data=form)
            assert answer.status_code == 200, answer.text
            tokens = answer.json()
            token = tokens["access_token"]
            kid = jose_part(token, 0)["kid"]
            if kid != traffic.old_kid and traffic.switched_at is None:
                traffic.switched_at = time.monotonic()
            for edge in EDGES:
                url = services[edge.name].url(edge.protected_path)
                for sent, again in ((token, False), (previous, True)):
                    response = await edges.get(url, headers=bearer(sent))
                    sent_kid = jose_part(sent, 0)["kid"]
                    traffic.answers.append(
                        Answer(edge.name, sent_kid, response.status_code, describe(response), again)
                    )
            previous = token


async def traffic_through_rotation(
    issuer: Issuer, services: dict[str, ServiceProcess], old_kid: str, *, immediately: bool
) -> Traffic:
    traffic = Traffic(old_kid)
    until = time.monotonic() + DEADLINE
    clients = [
        asyncio.create_task(client_loop(issuer.service, services, traffic, until))
        for _ in range(CLIENTS)
    ]
    # Rotate once the old key's tokens have reached both edges from every client (on a busy
    # machine the clients' first logins alone can take longer than the warm-up).
    await asyncio.sleep(WARM_UP)
    while not traffic.warmed() and time.monotonic() < until:
        await asyncio.sleep(0.05)
    # In a thread and a loop of its own, as another process would: the clients go on meanwhile.
    await asyncio.to_thread(asyncio.run, issuer.rotate(immediately=immediately))
    await asyncio.gather(*clients)
    return traffic


def check_no_failures(traffic: Traffic) -> None:
    assert traffic.switched_at is not None, f"no token of a new key within {DEADLINE} s"
    by_kid = Counter((answer.edge, answer.kid == traffic.old_kid) for answer in traffic.answers)
    for edge in EDGES:
        # Both keys' tokens reached both edges: the rotation happened under traffic.
        assert by_kid[(edge.name, True)] >= CLIENTS, by_kid
        assert by_kid[(edge.name, False)] >= CLIENTS, by_kid
    old_after = [a for a in traffic.answers if a.previous and a.kid == traffic.old_kid]
    assert old_after, "no token of the old key was sent again"
    failures = [answer for answer in traffic.answers if answer.status != 200]
    kinds = Counter(
        (a.edge, "old key" if a.kid == traffic.old_kid else "new key", a.status) for a in failures
    )
    assert not failures, (
        f"{len(failures)} of {len(traffic.answers)} valid requests failed: {dict(kinds)}; "
        f"the first: {failures[0].detail}"
    )


def current_kid(auth: ServiceProcess) -> str:
    with httpx.Client(base_url=auth.base_url, timeout=30) as client:
        credentials = {"email": new_email("probe"), "password": STRONG_PASSWORD}
        assert client.post("/signup", json=credentials).status_code == 201
        token = client.post("/login", json=credentials).json()["access_token"]
        kid: str = jose_part(token, 0)["kid"]
        return kid


def test_a_scheduled_rotation_fails_no_request_at_either_edge(
    issuer: Issuer, auth: ServiceProcess, launcher: EdgeLauncher
) -> None:
    # A new key is published exactly one JWKS lifetime (3 s) before it signs. The edges honour
    # the 3 s (minimum TTL 1 s) and refresh ahead of expiry, so they hold the new key before its
    # first token. They keep the default 30 s cooldown: a background refresh every ~2.5 s keeps
    # them always inside it, so a token they could not verify from what they already hold would
    # fail: publication must do it alone.
    mail, video = launcher.both({"JWKS_MIN_TTL": "1"})
    old_kid = current_kid(auth)
    traffic = asyncio.run(
        traffic_through_rotation(issuer, {"mail": mail, "video": video}, old_kid, immediately=False)
    )
    check_no_failures(traffic)


def test_an_immediate_rotation_fails_no_request_at_either_edge(
    issuer: Issuer, auth: ServiceProcess, launcher: EdgeLauncher
) -> None:
    # `keys rotate --now` signs with a key nobody has seen: each edge meets its kid in a token
    # first and fetches the JWKS then (one fetch, shared by every request waiting on it). That
    # works only outside the refetch cooldown, which runs from the edge's last fetch attempt
    # (here: its start-up fetch). REFETCH_COOLDOWN=1 and the warm-up make sure the edges are
    # outside it. With the default 30 s, an edge whose last fetch (start-up, background refresh,
    # another unknown kid) was less than 30 s before the first new token answers 401 to the new
    # key's tokens until its cooldown ends: the price of the flood protection.
    # The edges keep the keys 600 s whatever the issuer's max-age (their minimum TTL): no
    # background refresh happens, so only the unknown kid can make them fetch.
    mail, video = launcher.both(
        {"REFETCH_COOLDOWN": "1", "JWKS_MIN_TTL": "600", "JWKS_DEFAULT_TTL": "600"}
    )
    old_kid = current_kid(auth)
    with httpx.Client(timeout=30) as client:
        fetches_before = issuer_jwks_requests(client, auth.base_url)
    traffic = asyncio.run(
        traffic_through_rotation(issuer, {"mail": mail, "video": video}, old_kid, immediately=True)
    )
    with httpx.Client(timeout=30) as client:
        fetches = issuer_jwks_requests(client, auth.base_url) - fetches_before
    check_no_failures(traffic)
    assert fetches == len(EDGES), f"expected one JWKS fetch per edge, the issuer saw {fetches}"

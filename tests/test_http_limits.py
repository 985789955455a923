"""The HTTP server's limits, on real processes over raw loopback sockets.

The red team's findings: an 8 MB header answered 200; unfinished 50 MB headers grew an edge by
half a gigabyte; a half-sent request held a connection for over a minute; half-open connections
starved an edge of descriptors. Each service now runs uvicorn with :mod:`gatepass.server`'s
limits, set here small through the settings. Every wait is bounded, with twice the timeout as
its margin; a timer never fires early, so lower bounds are safe too.

Three processes for the module, started side by side (a start costs seconds of imports): a mail
edge with small limits and timeouts (the timing tests), an auth service with the same limits and a
small body limit, and a video edge with the small header limit and room for three connections
(the concurrency test: its timeouts stay long, so held connections stay held).
"""

from __future__ import annotations

import select
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, closing
from pathlib import Path

import pytest

from tests.support.procs import ServiceProcess, free_port, report_logs_of

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
KEEP_ALIVE_TIMEOUT = 1
MAX_HEADER_BYTES = 8192
LIMITS = {
    "MAX_HEADER_BYTES": str(MAX_HEADER_BYTES),
    "MAX_TOKEN_BYTES": "4096",  # an edge's header limit must leave room for a token
    "HEADER_TIMEOUT": str(HEADER_TIMEOUT),
    "BODY_TIMEOUT": str(BODY_TIMEOUT),
    "KEEP_ALIVE_TIMEOUT": str(KEEP_ALIVE_TIMEOUT),
}
DRIP_INTERVAL = 0.2
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"
REQUEST_AND_CLOSE = b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"


def launch(tmp_path: Path, service: str, settings: Mapping[str, str]) -> ServiceProcess:
    """``service`` (auth, mail or video) as a process, with ``settings`` under its prefix; started,
    not waited for."""
    module, prefix = {
        "auth": ("auth_service", "GATEPASS_AUTH_"),
        "mail": ("edge_service_mail", "GATEPASS_MAIL_"),
        "video": ("edge_service_video", "GATEPASS_VIDEO_"),
    }[service]
    port = free_port()
    env = {f"{prefix}{name}": value for name, value in settings.items()}
    env |= {f"{prefix}DATA_DIR": str(tmp_path / f"{service}-data")}
    if service == "auth":
        env |= {
            "GATEPASS_AUTH_ENVIRONMENT": "development",
            "GATEPASS_AUTH_ARGON2_MEMORY_COST": "8192",
        }
    else:  # production mode, the default http issuer on loopback
        env |= {f"{prefix}ALLOW_HTTP_ISSUER": "true"}
    process = ServiceProcess(
        service,
        [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", str(port)],
        base_url=f"http://127.0.0.1:{port}",
        log_dir=tmp_path / "logs",
        env=env,
        cwd=tmp_path,
        ready_path="/healthz",  # an edge without its issuer is alive, if not ready
        listening_log="Uvicorn running on",
    )
    process.start()
    return process


CONCURRENCY_LIMIT = 3
SETTINGS = {
    "mail": LIMITS,
    "auth": LIMITS | {"MAX_BODY_BYTES": "2048"},
    "video": {
        "MAX_HEADER_BYTES": LIMITS["MAX_HEADER_BYTES"],
        "MAX_TOKEN_BYTES": LIMITS["MAX_TOKEN_BYTES"],
        "CONCURRENCY_LIMIT": str(CONCURRENCY_LIMIT),
    },
}


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServiceProcess]]:
    """The module's three services, by name, each ready."""
    folder = tmp_path_factory.mktemp("limits")
    processes: dict[str, ServiceProcess] = {}
    try:
        for service, settings in SETTINGS.items():
            processes[service] = launch(folder, service, settings)
        for process in processes.values():
            process.wait_ready()
        yield processes
    finally:
        for process in processes.values():
            process.stop()


@pytest.fixture
def services(
    request: pytest.FixtureRequest, started: dict[str, ServiceProcess]
) -> dict[str, ServiceProcess]:
    """The module's services; a failing test's report shows their log tails."""
    for process in started.values():
        report_logs_of(request.node, process)
    return started


def port_of(process: ServiceProcess) -> int:
    return int(process.base_url.rsplit(":", 1)[1])


@pytest.fixture
def mail_port(services: dict[str, ServiceProcess]) -> int:
    """The mail edge with small limits and timeouts."""
    return port_of(services["mail"])


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def read_until_closed(sock: socket.socket, deadline: float) -> bytes:
    """Everything the server sends until it closes; fails if it is still open at ``deadline``."""
    received = b""
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"still open at the deadline, after {received!r}"
        ready, _, _ = select.select([sock], [], [], remaining)
        if not ready:
            continue
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def drip_until_closed(sock: socket.socket, data: bytes, deadline: float) -> bytes:
    """Send ``data`` a byte every DRIP_INTERVAL (a slow client) until the server closes.

    It keeps sending after an answer, as a slow client would: only a close stops it. Returns
    what the server sent.
    """
    received = b""
    for byte in data:
        assert time.monotonic() < deadline, f"still open at the deadline, after {received!r}"
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return received
        ready, _, _ = select.select([sock], [], [], DRIP_INTERVAL)
        if ready:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return received
            if not chunk:
                return received
            received += chunk
    raise AssertionError("the slow request was never cut off")


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def headers_of(response: bytes) -> dict[str, str]:
    head = response.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    return {name.lower(): value.strip() for name, _, value in (h.partition(":") for h in head)}


def test_an_oversized_header_is_431_and_closed(mail_port: int) -> None:
    with closing(connect(mail_port)) as sock:
        big = b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * MAX_HEADER_BYTES
        sock.sendall(big)
        response = read_until_closed(sock, time.monotonic() + 10)
    assert status_of(response) == 431, response
    assert headers_of(response)["content-type"] == "application/problem+json"
    assert headers_of(response)["x-content-type-options"] == "nosniff"
    assert b'"code": "headers_too_large"' in response


def test_a_huge_header_is_cut_off_at_the_limit_not_read(mail_port: int) -> None:
    """Megabytes offered; the server stops reading after the limit and closes."""
    with closing(connect(mail_port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: ")
        sent = 0
        with pytest.raises((BrokenPipeError, ConnectionResetError)):  # noqa: PT012
            for _ in range(200):  # 50 MB at most: the server must give up long before
                sock.sendall(b"a" * 256 * 1024)
                sent += 256 * 1024
        assert sent < 10 * 1024 * 1024  # kernel buffers hold a few MB; the server read 8 KiB


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
    mail_port: int,
) -> None:
    started = time.monotonic()
    with closing(connect(mail_port)) as sock:
        response = read_until_closed(sock, started + 2 * HEADER_TIMEOUT)
    assert time.monotonic() - started >= HEADER_TIMEOUT * 0.9
    assert status_of(response) == 408, response


def test_headers_sent_slowly_are_cut_off_after_the_header_timeout(mail_port: int) -> None:
    """Slowloris: a byte at a time, never finishing the headers, never idle long."""
    started = time.monotonic()
    with closing(connect(mail_port)) as sock:
        response = drip_until_closed(
            sock, REQUEST[:-2] + b"X: " + b"y" * 100, started + 2 * HEADER_TIMEOUT
        )
    assert time.monotonic() - started >= HEADER_TIMEOUT * 0.9
    assert status_of(response) == 408, response


def test_a_body_sent_slowly_is_cut_off_after_the_body_timeout(mail_port: int) -> None:
    """Headers done, then a body that trickles: the connection closes, drip or not."""
    head = b"POST /healthz HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\n"
    with closing(connect(mail_port)) as sock:
        sock.sendall(head)
        started = time.monotonic()
        drip_until_closed(sock, b"z" * 1000, started + 2 * BODY_TIMEOUT)
    assert time.monotonic() - started >= BODY_TIMEOUT * 0.9


def test_an_idle_kept_alive_connection_is_closed(mail_port: int) -> None:
    with closing(connect(mail_port)) as sock:
        sock.sendall(REQUEST)
        started = time.monotonic()
        response = read_until_closed(sock, started + 2 * KEEP_ALIVE_TIMEOUT)
    assert status_of(response) == 200, response
    assert time.monotonic() - started >= KEEP_ALIVE_TIMEOUT * 0.9


def test_connections_over_the_concurrency_limit_get_503(
    services: dict[str, ServiceProcess],
) -> None:
    port = port_of(services["video"])
    with ExitStack() as held:
        # Half-open connections, as an attacker holds them: each takes a slot.
        for _ in range(CONCURRENCY_LIMIT):
            held.enter_context(closing(connect(port)))
        for _ in range(3):
            with closing(connect(port)) as extra:
                response = read_until_closed(extra, time.monotonic() + 10)
            assert status_of(response) == 503, response
            assert headers_of(response)["retry-after"] == "1"
            assert b'"code": "server_busy"' in response
    # Slots free again once the held connections are gone (the server sees each close).
    deadline = time.monotonic() + 10
    while True:
        with closing(connect(port)) as sock:
            sock.sendall(REQUEST_AND_CLOSE)
            response = read_until_closed(sock, time.monotonic() + 10)
        if status_of(response) == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status_of(response) == 200, response


@pytest.mark.parametrize("service", ["auth", "mail", "video"])
def test_every_service_runs_with_the_limits(
    services: dict[str, ServiceProcess], service: str
) -> None:
    """The same runner and protocol serve all three: a big header is 431, HEAD has no body."""
    port = port_of(services[service])
    with closing(connect(port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * MAX_HEADER_BYTES)
        assert status_of(read_until_closed(sock, time.monotonic() + 10)) == 431
    with closing(connect(port)) as sock:
        sock.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        response = read_until_closed(sock, time.monotonic() + 10)
    assert status_of(response) == 200, response
    headers = headers_of(response)
    assert int(headers["content-length"]) > 0
    assert response.endswith(b"\r\n\r\n")  # the headers a GET would have, and no content
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"


def test_a_chunked_body_over_the_limit_is_413_through_the_server(
    services: dict[str, ServiceProcess],
) -> None:
    """No Content-Length: counted as read, and a JSON route answers 413 (it was a 400)."""
    port = port_of(services["auth"])
    chunk = b"a" * 1024
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(4)) + b"0\r\n\r\n"
    with closing(connect(port)) as sock:
        sock.sendall(
            b"POST /login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + body
        )
        response = read_until_closed(sock, time.monotonic() + 10)
    assert status_of(response) == 413, response
    assert b'"code":"payload_too_large"' in response.replace(b" ", b"")

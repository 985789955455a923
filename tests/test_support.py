"""The test infrastructure itself, against stand-ins: Python's http.server and a real PostgreSQL.

If these fail, every cross-service test built on them would fail for the wrong reason; so would
``./dev up`` and the benchmarks, which start their services with the same launcher
(:mod:`gatepass.launch`).
"""

from __future__ import annotations

import signal
import socket
import sys
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from gatepass.launch import Service, probe
from tests.support.pg import asyncpg_dsn
from tests.support.procs import ServiceProcess, ServiceStartError, free_port, service_env

PRINTS_ITS_PID = "import os, time\nprint('pid', os.getpid(), flush=True)\ntime.sleep(60)\n"
IGNORES_SIGTERM = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('handler', 'installed', flush=True)\n"
    "time.sleep(60)\n"
)


def http_server(tmp_path: Path) -> ServiceProcess:
    """A stand-in service: ``python -m http.server`` on a free port, ready on ``/``."""
    port = free_port()
    return ServiceProcess(
        "http",
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        base_url=f"http://127.0.0.1:{port}",
        log_dir=tmp_path / "logs",
        cwd=tmp_path,
        ready_path="/",
    )


def python_child(tmp_path: Path, code: str) -> ServiceProcess:
    return ServiceProcess(
        "child",
        [sys.executable, "-c", code],
        base_url=f"http://127.0.0.1:{free_port()}",
        log_dir=tmp_path,
    )


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_service_env_drops_outer_gatepass_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEPASS_AUTH_ENVIRONMENT", "production")
    env = service_env({"GATEPASS_AUTH_ISSUER": "http://127.0.0.1:1"})
    assert "GATEPASS_AUTH_ENVIRONMENT" not in env
    assert env["GATEPASS_AUTH_ISSUER"] == "http://127.0.0.1:1"
    assert env["PATH"]


def test_service_serves_logs_and_stops(tmp_path: Path) -> None:
    with http_server(tmp_path) as service:
        service.wait_ready(timeout=30)
        assert httpx.get(service.url("/")).status_code == 200
        service.wait_for_log("GET / HTTP/1.1")
    assert not service.running
    assert service.returncode is not None


def test_kill_then_restart_on_the_same_port(tmp_path: Path) -> None:
    with http_server(tmp_path) as service:
        service.wait_ready(timeout=30)
        first_pid = service.pid

        assert service.kill() == -signal.SIGKILL
        with pytest.raises(httpx.ConnectError):
            httpx.get(service.url("/"))

        service.restart()
        assert service.pid != first_pid
        assert httpx.get(service.url("/")).status_code == 200
    assert service.log_text().count("--- http:") == 2


def test_stop_falls_back_to_sigkill(tmp_path: Path) -> None:
    service = python_child(tmp_path, IGNORES_SIGTERM).start()
    service.wait_for_log("handler installed")  # not in the logged command line
    said: list[str] = []
    assert service.stop(timeout=0.5, before_kill=lambda: said.append("killing")) == -signal.SIGKILL
    assert said == ["killing"]


def test_the_first_start_empties_the_log_and_a_restart_keeps_it(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    log.write_text("a previous run's words\n")
    command = [sys.executable, "-c", PRINTS_ITS_PID]
    with Service("child", command, base_url="http://127.0.0.1:1", log=log) as service:
        service.wait_for_log("pid")
        first = f"pid {service.pid}"
        service.stop()
        service.start().wait_for_log("pid")
        assert first not in service.run_output()  # only this run's words
        assert f"pid {service.pid}" in service.run_output()
    assert "a previous run" not in service.log_text()
    assert first in service.log_text()
    assert service.log_text().count("--- child:") == 2


def test_a_200_counts_only_once_the_service_said_it_listens(tmp_path: Path) -> None:
    """Else a server that took the port between free_port() and the bind would pass for ours."""
    service = http_server(tmp_path)
    service.listening_log = "a line http.server never logs"
    with service, pytest.raises(ServiceStartError, match=r"not ready after 1 s .* gave 200"):
        service.wait_ready(timeout=1)


def test_probe_names_what_kept_an_answer_away() -> None:
    assert probe(f"http://127.0.0.1:{free_port()}/healthz") == "ConnectionRefusedError"


def test_wait_ready_reports_exit_with_log_tail(tmp_path: Path) -> None:
    service = python_child(tmp_path, "print('config is broken'); raise SystemExit(3)").start()
    with pytest.raises(ServiceStartError, match=r"(?s)exited with status 3.*config is broken") as e:
        service.wait_ready(timeout=30)
    assert e.value.problem == "exited with status 3 before it was ready"
    assert e.value.tail.endswith("config is broken")


def test_wait_ready_times_out(tmp_path: Path) -> None:
    service = python_child(tmp_path, "import time; time.sleep(60)")
    with service, pytest.raises(ServiceStartError, match=r"not ready after 0\.5 s"):
        service.wait_ready(timeout=0.5)


@pytest.mark.parametrize("attempt", [1, 2])
async def test_postgres_url_is_a_fresh_database(postgres_url: str, attempt: int) -> None:
    """Run twice: the second run would hit DuplicateTable if databases were shared."""
    conn = await asyncpg.connect(asyncpg_dsn(postgres_url))
    try:
        assert await conn.fetchval("select 1") == 1
        await conn.execute("create table marker (attempt int primary key)")
        await conn.execute("insert into marker values ($1)", attempt)
        assert await conn.fetchval("select count(*) from marker") == 1
    finally:
        await conn.close()


async def test_postgres_url_works_with_sqlalchemy(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+asyncpg://")
    engine = create_async_engine(postgres_url)
    try:
        async with engine.connect() as conn:
            assert (
                await conn.execute(text("select current_database()"))
            ).scalar_one() in postgres_url
    finally:
        await engine.dispose()


def test_postgres_url_in_a_sync_test(postgres_url: str) -> None:
    """Sync tests (the ones driving service processes) get a database just the same."""
    assert "/test_" in postgres_url

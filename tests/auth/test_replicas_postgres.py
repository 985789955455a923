"""Several auth replicas on one PostgreSQL database, as real processes: shared keys, tokens that
work at either replica, and a forced rotation that exactly one of them carries out.

(Storage and restart on PostgreSQL: ``test_restart.py``; the signup race:
``test_concurrent_signup.py``.)
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from auth_service.app import running
from tests.support.auth_client import bearer, jose_part, login, new_user, refresh
from tests.support.inprocess import auth_settings
from tests.support.procs import ServiceProcess, free_port, report_logs_of

pytestmark = pytest.mark.postgres

PROMOTION_DEADLINE = 30.0  # the key signs 1 s (a JWKS max-age) after the rotation: 30x that
QUIET_AFTER = 1.0  # then five more checks of each replica, in which no second promotion may come


def _rotations(client: httpx.Client) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("gatepass_auth_key_rotations_total "):
            return float(line.split()[1])
    raise AssertionError("no rotation counter in /metrics")


REPLICA_SETTINGS = {
    "jwks_max_age": 1,
    "key_publish_margin": 0,
    "key_check_interval": 0.2,
    "key_rotation_interval": 60,
}


@dataclass
class Replicas:
    first: ServiceProcess
    second: ServiceProcess
    database_url: str
    kek: str


@pytest.fixture
def replicas(
    request: pytest.FixtureRequest, tmp_path: Path, auth_env: dict[str, str], postgres_url: str
) -> Iterator[Replicas]:
    """Two replicas started side by side, as an orchestrator starts them: one database, one
    key-encryption key (each has a data folder of its own)."""
    kek = secrets.token_hex(32)
    env = auth_env | {
        "GATEPASS_AUTH_DATABASE_URL": postgres_url,
        "GATEPASS_AUTH_KEK": kek,
        **{f"GATEPASS_AUTH_{name.upper()}": str(value) for name, value in REPLICA_SETTINGS.items()},
    }
    started = []
    for name in ("auth", "auth-2"):
        port = free_port()
        service = ServiceProcess(
            name,
            [sys.executable, "-m", "auth_service", "--host", "127.0.0.1", "--port", str(port)],
            base_url=f"http://127.0.0.1:{port}",
            log_dir=tmp_path / "logs",
            env=env | {"GATEPASS_AUTH_DATA_DIR": str(tmp_path / f"{name}-data")},
            cwd=tmp_path,
            listening_log="Uvicorn running on",
        )
        report_logs_of(request.node, service)
        started.append(service.start())
    try:
        for service in started:
            service.wait_ready()
        yield Replicas(started[0], started[1], postgres_url, kek)
    finally:
        for service in started:
            service.stop()


async def operator_rotates(replicas: Replicas, tmp_path: Path) -> None:
    """What ``gatepass keys rotate`` does, from this process: the service's parts started on the
    replicas' database, key-encryption key and key settings, without loops; a forced rotation."""
    settings = auth_settings(
        tmp_path, replicas.database_url, kek=SecretStr(replicas.kek), **REPLICA_SETTINGS
    )
    async with running(settings, background=False) as operator:
        await operator.keys.rotate()


def test_replicas_share_keys_and_exactly_one_rotates(replicas: Replicas, tmp_path: Path) -> None:
    with (
        httpx.Client(base_url=replicas.first.base_url, timeout=30) as one,
        httpx.Client(base_url=replicas.second.base_url, timeout=30) as two,
    ):
        assert one.get("/.well-known/jwks.json").json() == two.get("/.well-known/jwks.json").json()
        email, _, tokens = new_user(one)
        # A token from one replica works at the other; a refresh token too.
        assert two.get("/me", headers=bearer(tokens["access_token"])).status_code == 200
        rotated = refresh(two, tokens["refresh_token"]).json()
        old_kid = jose_part(tokens["access_token"], 0)["kid"]
        assert jose_part(rotated["access_token"], 0)["kid"] == old_kid
        assert login(two, email)["session_id"]

        # A forced rotation: both replicas' maintenance loops race to promote; exactly one does.
        asyncio.run(operator_rotates(replicas, tmp_path))
        deadline = time.monotonic() + PROMOTION_DEADLINE
        while time.monotonic() < deadline and _rotations(one) + _rotations(two) == 0:
            time.sleep(0.2)
        time.sleep(QUIET_AFTER)
        assert _rotations(one) + _rotations(two) == 1
        assert one.get("/.well-known/jwks.json").json() == two.get("/.well-known/jwks.json").json()
        new_kid = jose_part(login(one, email)["access_token"], 0)["kid"]
        assert jose_part(login(two, email)["access_token"], 0)["kid"] == new_kid
        assert new_kid != old_kid

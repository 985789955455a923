"""The operator command ``gatepass`` as a process, beside a running auth service.

What only a process shows: the installed entry point starts, reads the password from a pipe,
writes to the service's database, and exits 0; and the running service sees the change at once.
The command does not talk to the service over HTTP, so the service runs in-process here (ASGI, on
the same data folder). Each command's behaviour is tested in-process in
``auth-service/tests/test_operator_commands.py``; its read-only and start-up refusals as
processes in ``test_cli_read_only.py`` and ``test_settings_errors.py``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from auth_service.app import create_app, running
from tests.support.auth_client import STRONG_PASSWORD, new_email
from tests.support.cli import cli
from tests.support.inprocess import BASE_URL, auth_settings


async def test_admin_create_as_a_process_makes_an_admin_the_service_sees(
    tmp_path: Path, auth_env: dict[str, str]
) -> None:
    settings = auth_settings(tmp_path, None)
    assert auth_env["GATEPASS_AUTH_DATA_DIR"] == str(settings.data_dir)
    app = create_app(settings)
    async with running(settings, background=False) as services:
        app.state.services = services
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=30) as http:
            email = new_email("admin")
            env = auth_env | {"GATEPASS_AUTH_ISSUER": BASE_URL}
            # In a thread: the service goes on answering while the command runs.
            made = await asyncio.to_thread(
                cli, env, "admin", "create", email, stdin=STRONG_PASSWORD + "\n"
            )
            assert made.returncode == 0, made.stderr
            assert "admin: usr_" in made.stdout
            login = await http.post("/login", json={"email": email, "password": STRONG_PASSWORD})
            assert login.status_code == 200, login.text
            assert "admin" in login.json()["scope"].split()

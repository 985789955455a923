"""The operator command ``gatepass`` on the data of a running auth app: what it says, and what it
changes as the app sees it (through the database, as a running service would).

In-process: the command runs through typer's test runner in a worker thread (it runs an event
loop of its own, as its process would), the app on the test's loop. Both use the real clock: the
command has no other. The command as a process: ``tests/auth/test_operator_cli.py``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest
from api_users import PASSWORD, bearer, jose_part, new_email, signup
from asgi_clients import client_from
from typer.testing import CliRunner, Result

from auth_service import cli
from auth_service.app import create_app, running
from auth_service.config import Settings

RELOAD_DEADLINE = 10.0  # the app reloads its keys every KEY_CHECK_INTERVAL (0.5 s): 20x that


@dataclass
class Operator:
    """The app's client, and the command on the app's settings."""

    http: httpx.AsyncClient
    env: dict[str, str | None]

    async def run(self, *args: str, stdin: str | None = None) -> Result:
        """``gatepass ARGS...``, whatever its exit code."""
        runner = CliRunner()

        def invoke() -> Result:
            return runner.invoke(cli.app, list(args), stdin, self.env)

        return await asyncio.to_thread(invoke)

    async def ok(self, *args: str, stdin: str | None = None) -> str:
        """``gatepass ARGS...``, which must succeed: its standard output."""
        result = await self.run(*args, stdin=stdin)
        assert result.exit_code == 0, (args, result.stdout, result.stderr, result.exception)
        return result.stdout

    async def login(self, email: str, password: str = PASSWORD) -> httpx.Response:
        return await self.http.post("/login", json={"email": email, "password": password})

    async def scopes(self, email: str) -> list[str]:
        response = await self.login(email)
        assert response.status_code == 200, response.text
        scope: str = response.json()["scope"]
        return scope.split()

    async def published(self) -> list[str]:
        """The kids in the JWKS."""
        keys = (await self.http.get("/.well-known/jwks.json")).json()["keys"]
        return [key["kid"] for key in keys]

    async def signing_kid(self, email: str) -> str:
        """The kid of a token issued now."""
        response = await self.login(email)
        assert response.status_code == 200, response.text
        kid: str = jose_part(response.json()["access_token"], 0)["kid"]
        return kid

    async def wait_for(self, seen: Callable[[list[str], str], bool], email: str) -> bool:
        """Whether ``seen(published kids, signing kid)`` comes true before the deadline: the app
        learns what the command did when it next reloads its keys."""
        deadline = time.monotonic() + RELOAD_DEADLINE
        while not seen(await self.published(), await self.signing_kid(email)):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)
        return True


def command_env(settings: Settings) -> dict[str, str | None]:
    """The app's settings as the command reads them; any other ``GATEPASS_*`` variable unset."""
    unset: dict[str, str | None] = {
        name: None for name in os.environ if name.startswith("GATEPASS_")
    }
    return unset | {
        "GATEPASS_AUTH_ENVIRONMENT": settings.environment,
        "GATEPASS_AUTH_ISSUER": settings.issuer,
        "GATEPASS_AUTH_DATA_DIR": str(settings.data_dir),
        "GATEPASS_AUTH_ARGON2_TIME_COST": str(settings.argon2_time_cost),
        "GATEPASS_AUTH_ARGON2_MEMORY_COST": str(settings.argon2_memory_cost),
        "GATEPASS_AUTH_ARGON2_PARALLELISM": str(settings.argon2_parallelism),
    }


@pytest.fixture
async def operator(settings_for: Callable[..., Settings]) -> AsyncIterator[Operator]:
    settings = settings_for(key_check_interval=0.5)
    app = create_app(settings)
    async with running(settings, background=False) as services:
        app.state.services = services
        async with client_from(app) as http:
            yield Operator(http, command_env(settings))


async def test_admin_create_makes_an_admin_and_users_list_shows_everyone(
    operator: Operator,
) -> None:
    admin_email = new_email("admin")
    out = await operator.ok("admin", "create", admin_email, stdin=PASSWORD + "\n")
    assert "admin:" in out
    assert "admin" in await operator.scopes(admin_email)
    email = new_email()
    await signup(operator.http, email)
    users = await operator.ok("users", "list")
    assert admin_email in users
    assert email in users


async def test_admin_create_never_promotes_an_existing_account_silently(
    operator: Operator,
) -> None:
    """Someone signs up the admin's email first: the command refuses, and promotes only when
    told to, saying whose account it is."""
    email = new_email("ops-admin")
    operator_password = "the operator's passphrase, never read 8"
    squatter_id = await signup(operator.http, email)  # with the squatter's own password

    refused = await operator.run("admin", "create", email, stdin=operator_password + "\n")
    assert refused.exit_code == 1, (refused.stdout, refused.stderr)
    assert "admin:" not in refused.stdout
    assert "already exists" in refused.stderr
    assert "NOT made an admin" in refused.stderr
    assert "--promote-existing" in refused.stderr
    assert squatter_id in refused.stderr
    assert "admin" not in await operator.scopes(email)
    assert (await operator.login(email, operator_password)).status_code == 401

    promoted = await operator.ok("admin", "create", email, "--promote-existing")
    for shown in (squatter_id, email, "created:", "roles:", "user"):
        assert shown in promoted
    assert f"admin: {squatter_id} (existing account, now admin)" in promoted
    assert "admin" in await operator.scopes(email)

    fresh = new_email("second-admin")
    made = await operator.ok("admin", "create", fresh, "--promote-existing", stdin=PASSWORD + "\n")
    assert "admin: usr_" in made
    assert "admin" in await operator.scopes(fresh)


async def test_operator_keys_and_token_decode(operator: Operator) -> None:
    email = new_email()
    user_id = await signup(operator.http, email)
    tokens = (await operator.login(email)).json()
    active, _ = await operator.published()  # the access-token key, then the ID-token key
    assert jose_part(tokens["access_token"], 0)["kid"] == active
    listing = await operator.ok("keys", "list")
    assert active[:10] in listing
    assert "active" in listing
    decoded = await operator.ok("token", "decode", tokens["access_token"])
    assert '"typ": "at+jwt"' in decoded
    assert user_id in decoded
    assert "not verified" in decoded
    # Emergency revoke: gone from the JWKS at once (the app's next reload), and a new key signs.
    await operator.ok("keys", "revoke", "--", active)  # a kid may begin with "-"
    assert await operator.wait_for(lambda kids, _: active not in kids, email)
    assert await operator.signing_kid(email) in await operator.published()
    me = await operator.http.get("/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 401


async def test_operator_rotates_keys(operator: Operator) -> None:
    """``keys rotate`` publishes a next key and keeps signing with the current one (it signs one
    publish lead later); ``keys rotate --now`` signs with a new key at once."""
    email = new_email()
    await signup(operator.http, email)
    old_kid = await operator.signing_kid(email)

    scheduled = await operator.ok("keys", "rotate")
    assert "published; signs after the publish lead" in " ".join(scheduled.split())
    next_kid = scheduled.split(":")[0].strip()
    assert await operator.wait_for(lambda kids, _: next_kid in kids, email)
    published = await operator.published()  # and the ID-token key
    assert len(published) == 3
    assert {old_kid, next_kid} <= set(published)
    assert await operator.signing_kid(email) == old_kid  # the lead: a JWKS lifetime and more

    immediate = await operator.ok("keys", "rotate", "--now")
    assert "signing now" in immediate
    now_kid = immediate.split(":")[0].strip()
    assert now_kid not in (old_kid, next_kid)
    assert await operator.wait_for(lambda _, signing: signing == now_kid, email)

"""A restart keeps everyone logged in, on SQLite and on PostgreSQL.

The service's first life runs in this process (its parts started as a process starts them, the
app over ASGI) and ends as a process's does, its lifespan closed; the second life is a new process
on the same data folder and database. Everything it knows of the first (the keys, the account,
the session and its refresh-token lineage) it reads back from the database: nothing carries over
in memory.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from auth_service.app import create_app, running
from tests.support.auth_client import STRONG_PASSWORD, bearer, verify_with_jwks
from tests.support.inprocess import auth_settings
from tests.support.procs import ServiceFactory

EMAIL = "ann@example.com"


@dataclass
class FirstLife:
    user_id: str
    tokens: dict[str, Any]  # the login
    rotated: dict[str, Any]  # the refresh grant after it
    kids: list[str]


def kids(jwks: httpx.Response) -> list[str]:
    return [key["kid"] for key in jwks.json()["keys"]]


async def first_life(tmp_path: Path, issuer: str, database_url: str | None) -> FirstLife:
    settings = auth_settings(tmp_path, database_url, issuer=issuer)
    app = create_app(settings)
    async with running(settings) as services:  # its background loops too, as in a process
        app.state.services = services
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=issuer) as client:
            account = {"email": EMAIL, "password": STRONG_PASSWORD}
            user_id = (await client.post("/signup", json=account)).json()["id"]
            tokens = (await client.post("/login", json=account)).json()
            form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
            rotated = (await client.post("/token", data=form)).json()
            assert rotated["session_id"] == tokens["session_id"]
            return FirstLife(
                user_id, tokens, rotated, kids(await client.get("/.well-known/jwks.json"))
            )


def test_restart_keeps_everyone_logged_in(
    start_auth: ServiceFactory,
    auth_env: dict[str, str],
    tmp_path: Path,
    database_url: str | None,
) -> None:
    issuer = auth_env["GATEPASS_AUTH_ISSUER"]
    before = asyncio.run(first_life(tmp_path, issuer, database_url))
    auth = start_auth({"GATEPASS_AUTH_DATABASE_URL": database_url} if database_url else None)
    with httpx.Client(base_url=auth.base_url, timeout=30) as client:
        assert kids(client.get("/.well-known/jwks.json")) == before.kids
        for access_token in (before.tokens["access_token"], before.rotated["access_token"]):
            me = client.get("/me", headers=bearer(access_token))
            assert me.status_code == 200, me.text
            assert me.json()["id"] == before.user_id
        form = {"grant_type": "refresh_token", "refresh_token": before.rotated["refresh_token"]}
        refreshed = client.post("/token", data=form)
        assert refreshed.status_code == 200, refreshed.text
        claims = verify_with_jwks(client, refreshed.json()["access_token"])
        assert claims["sub"] == before.user_id
        taken = client.post("/signup", json={"email": EMAIL, "password": STRONG_PASSWORD})
        assert taken.status_code == 409

"""The admin API (roles, disabling) and RFC 7662 introspection, seen by a client. In-process.

The admin is made as ``gatepass admin create`` makes one (an account with the ``admin`` role);
the command itself is tested in ``test_operator_commands.py``.
"""

from __future__ import annotations

import httpx
import pytest
from api_users import PASSWORD, bearer, login, new_email, new_user
from asgi_clients import client_from
from fastapi import FastAPI
from pydantic import SecretStr
from refresh_helpers import refresh

from auth_service import accounts
from auth_service.config import Settings
from auth_service.state import Services

MAIL_SECRET = "mail-secret-for-tests"


async def test_admin_sets_roles_and_disables_users(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin_email = new_email("admin")
    await accounts.signup(services, admin_email, PASSWORD, roles=["admin"])
    admin = await login(client, admin_email)
    assert "admin" in admin["scope"].split()
    as_admin = bearer(admin["access_token"])
    email, user_id, user = await new_user(client)

    # A plain user cannot use the admin API.
    forbidden = await client.get("/admin/users", headers=bearer(user["access_token"]))
    assert forbidden.status_code == 403
    assert 'error="insufficient_scope"' in forbidden.headers["WWW-Authenticate"]

    listed = (await client.get("/admin/users", headers=as_admin)).json()
    assert {u["email"] for u in listed["users"]} == {admin_email, email}
    assert listed["total"] == 2

    # Roles: a viewer may read but not send; the change shows at the next refresh, and tokens
    # issued before it stop working at the issuer.
    changed = await client.put(
        f"/admin/users/{user_id}/roles", json={"roles": ["viewer"]}, headers=as_admin
    )
    assert changed.status_code == 200
    assert changed.json()["roles"] == ["viewer"]
    assert (await client.get("/me", headers=bearer(user["access_token"]))).status_code == 401
    refreshed = (await refresh(client, user["refresh_token"])).json()
    assert refreshed["scope"].split() == ["mail:read", "video:read"]
    # A token issued right after the change (here: at the same instant) is not caught by it.
    assert (await client.get("/me", headers=bearer(refreshed["access_token"]))).status_code == 200
    unknown = await client.put(
        f"/admin/users/{user_id}/roles", json={"roles": ["emperor"]}, headers=as_admin
    )
    assert unknown.status_code == 422
    assert unknown.json()["code"] == "invalid_role"

    # Disabling revokes every session and refuses new logins.
    disabled = await client.post(f"/admin/users/{user_id}/disable", headers=as_admin)
    assert disabled.json()["disabled"] is True
    assert (await refresh(client, refreshed["refresh_token"])).json()["error"] == "invalid_grant"
    denied = await client.post("/login", json={"email": email, "password": PASSWORD})
    assert denied.status_code == 403
    assert denied.json()["code"] == "account_disabled"
    enabled = await client.post(f"/admin/users/{user_id}/enable", headers=as_admin)
    assert enabled.status_code == 200
    assert (await login(client, email))["access_token"]
    nobody = await client.post("/admin/users/usr_nobody/disable", headers=as_admin)
    assert nobody.status_code == 404


@pytest.fixture
def auth_settings(auth_settings: Settings) -> Settings:
    clients = {"mail": SecretStr(MAIL_SECRET)}
    return auth_settings.model_copy(update={"introspection_clients": clients})


async def test_introspection_needs_client_authentication(app: FastAPI) -> None:
    async with client_from(app) as client:
        _, user_id, tokens = await new_user(client)
        form = {"token": tokens["access_token"]}
        anonymous = await client.post("/introspect", data=form)
        assert anonymous.status_code == 401
        assert anonymous.json()["error"] == "invalid_client"
        wrong = await client.post("/introspect", data=form, auth=("mail", "guess"))
        assert wrong.status_code == 401
        active = (await client.post("/introspect", data=form, auth=("mail", MAIL_SECRET))).json()
        assert active["active"] is True
        assert active["sub"] == user_id
        assert active["sid"] == tokens["session_id"]
        garbage = await client.post(
            "/introspect", data={"token": "abc"}, auth=("mail", MAIL_SECRET)
        )
        assert garbage.json() == {"active": False}
        await client.post("/logout", headers=bearer(tokens["access_token"]))
        after = await client.post("/introspect", data=form, auth=("mail", MAIL_SECRET))
        assert after.json() == {"active": False}

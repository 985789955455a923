"""The admin API, the operator command, and RFC 7662 introspection."""

from __future__ import annotations

import time

import httpx

from tests.support.auth_client import (
    STRONG_PASSWORD,
    bearer,
    login,
    new_email,
    new_user,
    refresh,
    signup,
)
from tests.support.cli import cli, run_cli
from tests.support.procs import ServiceFactory


def test_admin_sets_roles_and_disables_users(
    start_auth: ServiceFactory, auth_env: dict[str, str]
) -> None:
    auth = start_auth()
    admin_email = new_email("admin")
    out = run_cli(auth_env, "admin", "create", admin_email, stdin=STRONG_PASSWORD + "\n")
    assert "admin:" in out
    with httpx.Client(base_url=auth.base_url) as client:
        admin = login(client, admin_email)
        assert "admin" in admin["scope"].split()
        as_admin = bearer(admin["access_token"])
        email, user_id, user = new_user(client)

        # A plain user cannot use the admin API.
        forbidden = client.get("/admin/users", headers=bearer(user["access_token"]))
        assert forbidden.status_code == 403
        assert 'error="insufficient_scope"' in forbidden.headers["WWW-Authenticate"]

        listed = client.get("/admin/users", headers=as_admin).json()
        assert {u["email"] for u in listed["users"]} == {admin_email, email}
        assert listed["total"] == 2

        # Roles: a viewer may read but not send; the change shows at the next refresh, and
        # tokens issued before it stop working at the issuer.
        changed = client.put(
            f"/admin/users/{user_id}/roles", json={"roles": ["viewer"]}, headers=as_admin
        )
        assert changed.status_code == 200
        assert changed.json()["roles"] == ["viewer"]
        assert client.get("/me", headers=bearer(user["access_token"])).status_code == 401
        refreshed = refresh(client, user["refresh_token"]).json()
        assert refreshed["scope"].split() == ["mail:read", "video:read"]
        # A token issued right after the change (even in the same second) is not caught by it.
        assert client.get("/me", headers=bearer(refreshed["access_token"])).status_code == 200
        unknown = client.put(
            f"/admin/users/{user_id}/roles", json={"roles": ["emperor"]}, headers=as_admin
        )
        assert unknown.status_code == 422
        assert unknown.json()["code"] == "invalid_role"

        # Disabling revokes every session and refuses new logins.
        assert (
            client.post(f"/admin/users/{user_id}/disable", headers=as_admin).json()["disabled"]
            is True
        )
        assert refresh(client, refreshed["refresh_token"]).json()["error"] == "invalid_grant"
        denied = client.post("/login", json={"email": email, "password": STRONG_PASSWORD})
        assert denied.status_code == 403
        assert denied.json()["code"] == "account_disabled"
        assert client.post(f"/admin/users/{user_id}/enable", headers=as_admin).status_code == 200
        assert login(client, email)["access_token"]
        assert client.post("/admin/users/usr_nobody/disable", headers=as_admin).status_code == 404

    users = run_cli(auth_env, "users", "list")
    assert admin_email in users
    assert email in users


def test_admin_create_never_promotes_an_existing_account_silently(
    start_auth: ServiceFactory, auth_env: dict[str, str]
) -> None:
    """Someone signs up the admin's email first: the command refuses, and promotes only when
    told to, saying whose account it is."""
    auth = start_auth()
    email = new_email("ops-admin")
    operator_password = "the operator's passphrase, never read 8"
    with httpx.Client(base_url=auth.base_url) as client:
        squatter_id = signup(client, email)  # with the squatter's own password

        refused = cli(auth_env, "admin", "create", email, stdin=operator_password + "\n")
        assert refused.returncode == 1, refused
        assert "admin:" not in refused.stdout
        assert "already exists" in refused.stderr
        assert "NOT made an admin" in refused.stderr
        assert "--promote-existing" in refused.stderr
        assert squatter_id in refused.stderr
        assert "admin" not in login(client, email)["scope"].split()
        wrong = client.post("/login", json={"email": email, "password": operator_password})
        assert wrong.status_code == 401

        promoted = run_cli(auth_env, "admin", "create", email, "--promote-existing")
        for shown in (squatter_id, email, "created:", "roles:", "user"):
            assert shown in promoted
        assert f"admin: {squatter_id} (existing account, now admin)" in promoted
        assert "admin" in login(client, email)["scope"].split()

        fresh = new_email("second-admin")
        made = run_cli(
            auth_env, "admin", "create", fresh, "--promote-existing", stdin=STRONG_PASSWORD + "\n"
        )
        assert "admin: usr_" in made
        assert "admin" in login(client, fresh)["scope"].split()


def test_operator_keys_and_token_decode(
    start_auth: ServiceFactory, auth_env: dict[str, str]
) -> None:
    auth = start_auth()
    with httpx.Client(base_url=auth.base_url) as client:
        _, user_id, tokens = new_user(client)
        (active,) = client.get("/.well-known/jwks.json").json()["keys"]
    listing = run_cli(auth_env, "keys", "list")
    assert active["kid"][:10] in listing
    assert "active" in listing
    decoded = run_cli(auth_env, "token", "decode", tokens["access_token"])
    assert '"typ": "at+jwt"' in decoded
    assert user_id in decoded
    assert "not verified" in decoded
    # Emergency revoke: gone from the JWKS at once, and a new key signs.
    run_cli(auth_env, "keys", "revoke", active["kid"])
    with httpx.Client(base_url=auth.base_url) as client:
        deadline_kids: list[str] = []
        for _ in range(50):
            deadline_kids = [k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]]
            if active["kid"] not in deadline_kids:
                break
            time.sleep(0.2)
        assert active["kid"] not in deadline_kids
        assert client.get("/me", headers=bearer(tokens["access_token"])).status_code == 401


def test_introspection_needs_client_authentication(start_auth: ServiceFactory) -> None:
    auth = start_auth({"GATEPASS_AUTH_INTROSPECTION_CLIENTS": '{"mail": "mail-secret-for-tests"}'})
    with httpx.Client(base_url=auth.base_url) as client:
        _, user_id, tokens = new_user(client)
        form = {"token": tokens["access_token"]}
        anonymous = client.post("/introspect", data=form)
        assert anonymous.status_code == 401
        assert anonymous.json()["error"] == "invalid_client"
        wrong = client.post("/introspect", data=form, auth=("mail", "guess"))
        assert wrong.status_code == 401
        active = client.post(
            "/introspect", data=form, auth=("mail", "mail-secret-for-tests")
        ).json()
        assert active["active"] is True
        assert active["sub"] == user_id
        assert active["sid"] == tokens["session_id"]
        garbage = client.post(
            "/introspect", data={"token": "abc"}, auth=("mail", "mail-secret-for-tests")
        )
        assert garbage.json() == {"active": False}
        client.post("/logout", headers=bearer(tokens["access_token"]))
        after = client.post("/introspect", data=form, auth=("mail", "mail-secret-for-tests")).json()
        assert after == {"active": False}

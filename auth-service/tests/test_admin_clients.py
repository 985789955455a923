"""The admin API of the client registry, ``/admin/clients``, seen by an admin's client. In-process.

A secret is in the answer that makes it (registration, rotation) and nowhere else: never in a GET,
never its hash.
"""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest
from api_users import PASSWORD, bearer, login, new_email, new_user
from service_clients import ec_jwk

from auth_service import accounts
from auth_service.state import Services


def field_names(value: Any) -> list[str]:
    """Every object member name in a JSON document."""
    if isinstance(value, dict):
        return [*value, *(name for item in value.values() for name in field_names(item))]
    if isinstance(value, list):
        return [name for item in value for name in field_names(item)]
    return []


@pytest.fixture
async def as_admin(client: httpx.AsyncClient, services: Services) -> dict[str, str]:
    email = new_email("admin")
    await accounts.signup(services, email, PASSWORD, roles=["admin"])
    return bearer((await login(client, email))["access_token"])


def service(client_id: str = "video", **fields: Any) -> dict[str, Any]:
    return {
        "client_id": client_id,
        "kind": "service",
        "auth_method": "private_key_jwt",
        "audiences": ["mail"],
        "scopes": ["mail:notify"],
        "resource": "video",
        "jwks": {"keys": [ec_jwk(f"{client_id}-1")]},
        **fields,
    }


async def test_register_read_change_and_remove(
    client: httpx.AsyncClient, as_admin: dict[str, str], services: Services
) -> None:
    created = await client.post("/admin/clients", json=service(), headers=as_admin)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["client_id"] == "video"
    assert body["client_secret"] is None
    assert body["resource"] == "video"
    assert created.headers["Cache-Control"] == "no-store"

    listed = await client.get("/admin/clients", headers=as_admin)
    assert [c["client_id"] for c in listed.json()["clients"]] == ["video"]
    one = await client.get("/admin/clients/video", headers=as_admin)
    assert one.json()["jwks"]["keys"][0]["kid"] == "video-1"

    changed = await client.patch(
        "/admin/clients/video",
        json={"audiences": ["mail", "auth"], "resource": None},
        headers=as_admin,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["audiences"] == ["auth", "mail"]
    assert changed.json()["resource"] is None
    assert changed.json()["scopes"] == ["mail:notify"]  # left out: as it was

    moved = await client.patch(
        "/admin/clients/video",
        json={"jwks_uri": "https://video.example.test/jwks.json"},
        headers=as_admin,
    )
    assert (moved.json()["jwks"], moved.json()["jwks_uri"]) == (
        None,
        "https://video.example.test/jwks.json",
    )

    disabled = await client.patch("/admin/clients/video", json={"disabled": True}, headers=as_admin)
    assert disabled.json()["disabled"] is True
    page = await services.feed.read(None)
    assert [e["sub"] for e in page.events if e["kind"] == "user"] == ["video"]

    removed = await client.delete("/admin/clients/video", headers=as_admin)
    assert removed.status_code == 204
    assert removed.content == b""
    gone = await client.get("/admin/clients/video", headers=as_admin)
    assert gone.status_code == 404
    assert gone.json()["code"] == "not_found"


async def test_a_secret_is_shown_once_and_never_its_hash(
    client: httpx.AsyncClient, as_admin: dict[str, str]
) -> None:
    body = service("mail", auth_method="client_secret_basic", jwks=None, resource="mail")
    created = await client.post("/admin/clients", json=body, headers=as_admin)
    assert created.status_code == 201, created.text
    secret = created.json()["client_secret"]
    assert isinstance(secret, str)
    assert len(secret) >= 43

    rotated = await client.post("/admin/clients/mail/secret", headers=as_admin)
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["client_secret"]
    assert new_secret != secret
    assert rotated.headers["Cache-Control"] == "no-store"

    # The new secret works, the old one does not.
    assert (
        await client.post("/revoke", data={"token": "x"}, auth=("mail", new_secret))
    ).status_code == 200
    assert (
        await client.post("/revoke", data={"token": "x"}, auth=("mail", secret))
    ).status_code == 401

    reads = [
        await client.get("/admin/clients", headers=as_admin),
        await client.get("/admin/clients/mail", headers=as_admin),
        await client.patch("/admin/clients/mail", json={"scopes": []}, headers=as_admin),
    ]
    for answer in reads:
        assert answer.status_code == 200
        for value in (secret, new_secret):
            assert value not in answer.text
            assert hashlib.sha256(value.encode()).hexdigest() not in answer.text
        assert not [
            name for name in field_names(answer.json()) if "secret" in name or "hash" in name
        ]


async def test_refusals_are_problem_details(
    client: httpx.AsyncClient, as_admin: dict[str, str]
) -> None:
    assert (await client.post("/admin/clients", json=service(), headers=as_admin)).is_success
    exists = await client.post("/admin/clients", json=service(), headers=as_admin)
    assert exists.status_code == 409
    assert exists.json()["code"] == "client_exists"

    private = ec_jwk("k", private=True)
    for body, word in (
        (service("usr_x"), "usr_"),
        (service("other", jwks={"keys": [private]}), "private"),
        (service("other", audiences=["payroll"]), "audiences"),
        (service("other", scopes=["mail:burn"]), "scopes"),
        (service("other", auth_method="none", jwks=None), "public"),
    ):
        refused = await client.post("/admin/clients", json=body, headers=as_admin)
        assert refused.status_code == 422, body
        problem = refused.json()
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert problem["code"] == "invalid_client_metadata"
        assert word in problem["detail"]
        assert private["d"] not in refused.text

    assert (await client.post("/admin/clients/video/secret", headers=as_admin)).status_code == 422
    for method, path in (
        ("GET", "/admin/clients/nobody"),
        ("PATCH", "/admin/clients/nobody"),
        ("POST", "/admin/clients/nobody/secret"),
        ("DELETE", "/admin/clients/nobody"),
    ):
        answer = await client.request(method, path, headers=as_admin, json={})
        assert answer.status_code == 404, (method, path)
    bad_id = await client.get("/admin/clients/bad%20id", headers=as_admin)
    assert bad_id.status_code == 422
    extra = await client.patch("/admin/clients/video", json={"secret": "x"}, headers=as_admin)
    assert extra.status_code == 422


async def test_only_admins_manage_clients(client: httpx.AsyncClient) -> None:
    _, _, user = await new_user(client)
    as_user = bearer(user["access_token"])
    assert (await client.get("/admin/clients", headers=as_user)).status_code == 403
    refused = await client.post("/admin/clients", json=service(), headers=as_user)
    assert refused.status_code == 403
    assert (await client.get("/admin/clients")).status_code == 401

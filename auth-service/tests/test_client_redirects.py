"""Apps' redirect URIs and post-logout redirect URIs in the registry: what is accepted, what is
refused (and where: the registry, the clients file, the admin API), and the origins they make.
Also RFC 9864's name for Ed25519 keys, ``Ed25519``, beside ``EdDSA``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_users import PASSWORD, bearer, login, new_email
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import OKPAlgorithm
from service_clients import add_client

from auth_service import accounts, client_file, registry
from auth_service.config import ConfigError
from auth_service.registry import RegistryError
from auth_service.state import Services

GOOD = (
    "https://photos.example/callback",
    "https://photos.example:8443/cb?tenant=a",
    "http://127.0.0.1:5000/cb",
    "http://[::1]:5000/cb",
    "http://localhost/cb",
)
BAD = (
    "http://photos.example/callback",  # plain http off loopback
    "/callback",  # relative
    "photos.example/callback",
    "https://photos.example/cb#frag",
    "https://photos.example/cb#",
    "https://user:pass@photos.example/cb",
    "javascript:alert(1)",
    "https://photos.example/c b",
    "https://photos.example/cb\n",
    "",
    "https://photos.example/" + "a" * 2100,
)


async def _app(services: Services, *, client_id: str = "photos", **fields: list[str]) -> Any:
    return await add_client(
        services,
        client_id=client_id,
        kind="app",
        auth_method="none",
        audiences=["mail"],
        scopes=[],
        **fields,
    )


async def _app_with(services: Services, field: str, uris: list[str]) -> Any:
    if field == "redirect_uris":
        return await _app(services, redirect_uris=uris)
    return await _app(services, post_logout_redirect_uris=uris)


async def test_an_app_registers_its_uris(services: Services) -> None:
    client, _ = await _app(
        services, redirect_uris=list(GOOD), post_logout_redirect_uris=[GOOD[0], GOOD[0]]
    )
    assert client.redirect_uris == GOOD
    assert client.post_logout_redirect_uris == (GOOD[0],)  # each once
    async with services.sessions() as db:
        found = await registry.get(db, "photos")
    assert found.redirect_uris == GOOD
    assert registry.web_origins(found) == {
        "https://photos.example",
        "https://photos.example:8443",
        "http://127.0.0.1:5000",
        "http://[::1]:5000",
        "http://localhost",
    }


@pytest.mark.parametrize("uri", BAD)
async def test_a_bad_uri_is_refused(services: Services, uri: str) -> None:
    for field in ("redirect_uris", "post_logout_redirect_uris"):
        with pytest.raises(RegistryError) as refused:
            await _app_with(services, field, [uri])
        assert field in refused.value.detail
        if uri:
            assert uri not in refused.value.detail  # the detail never echoes the URI


async def test_at_most_ten(services: Services) -> None:
    uris = [f"https://photos.example/cb{n}" for n in range(11)]
    with pytest.raises(RegistryError):
        await _app(services, redirect_uris=uris)
    client, _ = await _app(services, redirect_uris=uris[:10])
    assert len(client.redirect_uris) == 10


async def test_a_service_has_none(services: Services) -> None:
    with pytest.raises(RegistryError):
        await add_client(
            services,
            client_id="mail-svc",
            kind="service",
            auth_method="client_secret_basic",
            audiences=["video"],
            scopes=[],
            redirect_uris=["https://mail.example/cb"],
        )


async def test_update_sets_and_clears_them(services: Services) -> None:
    await _app(services, redirect_uris=[GOOD[0]])
    async with services.sessions() as db:
        changed = await registry.update(
            db, services.settings, "photos", redirect_uris=[GOOD[1]], now=services.clock()
        )
        assert changed.redirect_uris == (GOOD[1],)
        kept = await registry.update(
            db, services.settings, "photos", scopes=["mail:read"], now=services.clock()
        )
        assert kept.redirect_uris == (GOOD[1],)
        cleared = await registry.update(
            db, services.settings, "photos", redirect_uris=[], now=services.clock()
        )
        assert cleared.redirect_uris == ()
        with pytest.raises(RegistryError):
            await registry.update(
                db, services.settings, "photos", redirect_uris=[BAD[0]], now=services.clock()
            )


def _declared(tmp_path: Path, **fields: Any) -> Path:
    entry = {
        "client_id": "photos",
        "kind": "app",
        "auth_method": "none",
        "audiences": ["mail"],
        "scopes": [],
        **fields,
    }
    path = tmp_path / "clients.json"
    path.write_text(json.dumps({"clients": [entry]}))
    return path


async def test_the_clients_file_declares_them(services: Services, tmp_path: Path) -> None:
    path = _declared(
        tmp_path, redirect_uris=[GOOD[0]], post_logout_redirect_uris=["https://photos.example/"]
    )
    async with services.sessions() as db:
        await client_file.apply(db, services.settings, client_file.read(path), services.clock())
        found = await registry.get(db, "photos")
    assert found.redirect_uris == (GOOD[0],)
    assert found.post_logout_redirect_uris == ("https://photos.example/",)


async def test_the_clients_file_refuses_a_bad_one(services: Services, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="redirect_uris"):
        client_file.read(_declared(tmp_path, redirect_uris="https://photos.example/cb"))
    path = _declared(tmp_path, redirect_uris=[BAD[0]])
    async with services.sessions() as db:
        with pytest.raises(ConfigError, match="photos"):
            await client_file.apply(db, services.settings, client_file.read(path), services.clock())


async def test_the_admin_api_sets_and_shows_them(
    client: httpx.AsyncClient, services: Services
) -> None:
    email = new_email("admin")
    await accounts.signup(services, email, PASSWORD, roles=["admin"])
    as_admin = bearer((await login(client, email))["access_token"])
    body = {
        "client_id": "photos",
        "kind": "app",
        "auth_method": "none",
        "audiences": ["mail"],
        "redirect_uris": [GOOD[0]],
        "post_logout_redirect_uris": ["https://photos.example/"],
    }
    created = await client.post("/admin/clients", json=body, headers=as_admin)
    assert created.status_code == 201, created.text
    assert created.json()["redirect_uris"] == [GOOD[0]]
    refused = await client.patch(
        "/admin/clients/photos", json={"redirect_uris": [BAD[0]]}, headers=as_admin
    )
    assert refused.status_code == 422
    assert refused.json()["code"] == "invalid_client_metadata"
    changed = await client.patch(
        "/admin/clients/photos", json={"redirect_uris": [GOOD[1]]}, headers=as_admin
    )
    assert changed.json()["redirect_uris"] == [GOOD[1]]
    shown = await client.get("/admin/clients/photos", headers=as_admin)
    assert shown.json()["post_logout_redirect_uris"] == ["https://photos.example/"]


@pytest.mark.parametrize("alg", ["Ed25519", "EdDSA"])
def test_an_ed25519_key_may_name_either_alg(alg: str) -> None:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    jwk = {**OKPAlgorithm.to_jwk(key, as_dict=True), "kid": "k1", "alg": alg}
    assert registry.check_public_jwk(jwk) == "k1"

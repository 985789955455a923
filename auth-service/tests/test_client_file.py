"""The clients file (``GATEPASS_AUTH_CLIENTS_FILE``): declared clients registered at start,
brought in line at the next, and a file the service cannot use refused before it listens."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fake_clock import FakeClock

from auth_service import client_file, registry
from auth_service.__main__ import check
from auth_service.config import ConfigError, Settings
from auth_service.state import Services
from gatepass.clientkey import ClientRegistration
from gatepass.core.jwk import new_private_jwk, public_of

MAIL = ClientRegistration("mail", ("auth", "video"), ("revocations:read", "video:read"), "mail")


def write(path: Path, clients: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"clients": clients}))
    return path


SECRET = "a secret of thirty-two random bytes, say"


def secret_client(secret: str = SECRET) -> dict[str, Any]:
    return {
        "client_id": "reports",
        "kind": "service",
        "auth_method": "client_secret_basic",
        "audiences": ["mail"],
        "scopes": ["mail:notify"],
        "secret_sha256": hashlib.sha256(secret.encode()).hexdigest(),
    }


async def apply(services: Services, path: Path, clock: FakeClock) -> None:
    async with services.sessions() as db:
        await client_file.apply(db, services.settings, client_file.read(path), clock())


async def test_declared_clients_are_registered_as_declared(
    services: Services, tmp_path: Path, clock: FakeClock
) -> None:
    public = public_of(new_private_jwk())
    path = write(tmp_path / "clients.json", [MAIL.declaration(public), secret_client()])
    await apply(services, path, clock)
    async with services.sessions() as db:
        mail = await registry.find(db, "mail")
        reports = await registry.credentials_of(db, "reports")
    assert mail is not None
    assert (mail.kind, mail.resource) == ("service", "mail")
    assert mail.audiences == {"auth", "video"}
    assert mail.scopes == {"revocations:read", "video:read"}
    assert mail.jwks == {"keys": [public]}
    assert reports is not None
    assert reports[1] == registry.hash_secret(SECRET)


async def test_a_later_start_brings_them_in_line_but_keeps_a_disable(
    services: Services, tmp_path: Path, clock: FakeClock
) -> None:
    path = write(tmp_path / "clients.json", [MAIL.declaration(public_of(new_private_jwk()))])
    await apply(services, path, clock)
    async with services.sessions() as db:
        await registry.set_disabled(db, services.settings, "mail", True, now=clock())
    new_key = public_of(new_private_jwk())
    narrower = ClientRegistration("mail", ("video",), ("video:read",), "mail")
    write(path, [narrower.declaration(new_key)])
    await apply(services, path, clock)
    async with services.sessions() as db:
        mail = await registry.find(db, "mail")
    assert mail is not None
    assert (mail.audiences, mail.scopes) == (frozenset({"video"}), frozenset({"video:read"}))
    assert mail.jwks == {"keys": [new_key]}
    assert mail.disabled  # an operator's disable outlives the restart


async def test_a_declaration_the_registry_refuses_stops_the_start(
    services: Services, tmp_path: Path, clock: FakeClock
) -> None:
    private = new_private_jwk()
    path = write(
        tmp_path / "clients.json", [MAIL.declaration(private) | {"jwks": {"keys": [private]}}]
    )
    with pytest.raises(ConfigError, match="'mail' refused") as caught:
        await apply(services, path, clock)
    assert private["d"] not in str(caught.value)


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("{", "not JSON"),
        ('{"clients": {}}', '"clients": [...]'),
        (json.dumps({"clients": [{"client_id": "x", "kind": "service"}]}), "auth_method"),
        (json.dumps({"clients": [secret_client() | {"secret_sha256": "SECRET"}]}), "secret_sha256"),
        (json.dumps({"clients": [secret_client() | {"password": "hunter2"}]}), "unknown fields"),
        (json.dumps({"clients": [secret_client(), secret_client()]}), "declared twice"),
    ],
)
def test_a_file_it_cannot_use_is_refused_before_the_service_listens(
    settings_for: Callable[..., Settings], tmp_path: Path, content: str, said: str
) -> None:
    path = tmp_path / "clients.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=said.replace("[", r"\[").replace(".", r"\.")) as caught:
        check(settings_for(clients_file=path))
    assert "hunter2" not in str(caught.value)
    assert "SECRET" not in str(caught.value)


def test_a_missing_file_is_named_not_shown(
    settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="clients_file: cannot read it"):
        check(settings_for(clients_file=tmp_path / "nowhere.json"))

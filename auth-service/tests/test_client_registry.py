"""The client registry (``auth_service.registry``): what it registers and refuses, what disabling
and removing tell the edges, and the ``gatepass clients`` commands over it. In-process, on a real
SQLite file; the commands run as in ``test_operator_commands.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fake_clock import FakeClock
from jwt.algorithms import RSAAlgorithm
from pydantic import SecretStr
from service_clients import add_client, ec_jwk
from test_operator_commands import command_env
from typer.testing import CliRunner, Result

from auth_service import cli, registry
from auth_service.app import running
from auth_service.config import Settings
from auth_service.errors import NotFoundError
from auth_service.models import Client
from auth_service.registry import ClientExistsError, RegisteredClient, RegistryError
from auth_service.state import Services


def rsa_jwk(bits: int, kid: str = "r1") -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid}


async def register(svc: Services, **fields: Any) -> tuple[RegisteredClient, str | None]:
    """A valid private_key_jwt service ``video``, but for ``fields``."""
    values: dict[str, Any] = {
        "client_id": "video",
        "kind": "service",
        "auth_method": "private_key_jwt",
        "audiences": ["mail"],
        "scopes": ["mail:notify"],
        "jwks": {"keys": [ec_jwk()]},
        **fields,
    }
    return await add_client(svc, **values)


async def user_events(svc: Services) -> list[dict[str, Any]]:
    page = await svc.feed.read(None)
    return [event for event in page.events if event["kind"] == "user"]


async def test_register_find_list_and_update(services: Services, clock: FakeClock) -> None:
    video, secret = await register(services, resource="video")
    assert secret is None
    assert (video.kind, video.auth_method, video.confidential) == (
        "service",
        "private_key_jwt",
        True,
    )
    assert video.audiences == {"mail"}
    await register(services, client_id="mail", auth_method="client_secret_basic", jwks=None)
    async with services.sessions() as db:
        assert [c.client_id for c in await registry.listed(db)] == ["mail", "video"]
        assert await registry.find(db, "video") == video
        assert await registry.find(db, "nobody") is None
        clock.advance(5)
        changed = await registry.update(
            db,
            services.settings,
            "video",
            audiences=["mail", "auth"],
            scopes=["mail:notify", "revocations:read"],
            resource=None,
            now=clock(),
        )
    assert changed.audiences == {"auth", "mail"}
    assert changed.scopes == {"mail:notify", "revocations:read"}
    assert changed.resource is None
    assert changed.jwks == video.jwks  # left as it was
    assert changed.updated_at == clock()


async def test_keys_inline_or_at_a_uri_one_replacing_the_other(
    services: Services, clock: FakeClock
) -> None:
    await register(services)
    async with services.sessions() as db:
        at_uri = await registry.update(
            db, services.settings, "video", jwks_uri="https://video.test/jwks", now=clock()
        )
        assert (at_uri.jwks, at_uri.jwks_uri) == (None, "https://video.test/jwks")
        keys = {"keys": [ec_jwk("k2")]}
        inline = await registry.update(db, services.settings, "video", jwks=keys, now=clock())
        assert (inline.jwks, inline.jwks_uri) == (keys, None)
        with pytest.raises(RegistryError):
            await registry.update(db, services.settings, "video", jwks=None, now=clock())


async def test_a_secret_is_made_by_the_service_and_kept_as_its_hash(
    services: Services, clock: FakeClock
) -> None:
    client, secret = await register(
        services, client_id="mail", auth_method="client_secret_basic", jwks=None
    )
    assert secret is not None
    assert len(secret) >= 43  # 256 bits, base64url
    assert secret not in repr(client)
    async with services.sessions() as db:
        row = await db.get(Client, "mail")
        assert row is not None
        assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
        rotated = await registry.rotate_secret(db, "mail", now=clock())
        assert rotated != secret
        row = await db.get(Client, "mail", populate_existing=True)
        assert row is not None
        assert row.secret_hash == hashlib.sha256(rotated.encode()).hexdigest()
    await register(services)
    async with services.sessions() as db:
        with pytest.raises(RegistryError):  # a private_key_jwt client has no secret
            await registry.rotate_secret(db, "video", now=clock())
        with pytest.raises(NotFoundError):
            await registry.rotate_secret(db, "nobody", now=clock())


def _refusals() -> list[tuple[str, dict[str, Any]]]:
    return [
        ("a user id", {"client_id": "usr_abc"}),
        ("a bad id", {"client_id": "video service"}),
        ("an id too long", {"client_id": "v" * 101}),
        ("an unknown kind", {"kind": "robot"}),
        ("an unknown method", {"auth_method": "tls_client_auth"}),
        ("a public service", {"auth_method": "none", "jwks": None}),
        ("an unknown audience", {"audiences": ["payroll"]}),
        ("no audience", {"audiences": []}),
        ("an unknown scope", {"scopes": ["mail:burn"]}),
        ("a resource that is no audience", {"resource": "payroll"}),
        ("no keys", {"jwks": None}),
        ("keys inline and at a uri", {"jwks_uri": "https://video.test/jwks"}),
        ("a private key", {"jwks": {"keys": [ec_jwk(private=True)]}}),
        ("a symmetric key", {"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]}}),
        (
            "a key without kid",
            {"jwks": {"keys": [{k: v for k, v in ec_jwk().items() if k != "kid"}]}},
        ),
        ("two keys with one kid", {"jwks": {"keys": [ec_jwk("same"), ec_jwk("same")]}}),
        ("a small RSA key", {"jwks": {"keys": [rsa_jwk(1024)]}}),
        ("a key on another curve", {"jwks": {"keys": [{**ec_jwk(), "crv": "P-384"}]}}),
        ("a key that is no point", {"jwks": {"keys": [{**ec_jwk(), "x": ec_jwk()["y"]}]}}),
        ("a JWK, not a set", {"jwks": ec_jwk()}),
        ("a number JSON lacks", {"jwks": {"keys": [{**ec_jwk(), "ext": float("nan")}]}}),
        ("keys for a secret client", {"auth_method": "client_secret_basic"}),
    ]


@pytest.mark.parametrize(("case", "fields"), _refusals(), ids=[case for case, _ in _refusals()])
async def test_what_the_registry_refuses(
    services: Services, case: str, fields: dict[str, Any]
) -> None:
    with pytest.raises(RegistryError) as refused:
        await register(services, **fields)
    assert refused.value.status == 422, case
    jwks = fields.get("jwks")
    keys = jwks.get("keys", [jwks]) if isinstance(jwks, dict) else []
    material = [value for key in keys for name, value in key.items() if name in "d k x y n"]
    assert not [value for value in material if value in refused.value.detail]
    async with services.sessions() as db:
        assert await registry.listed(db) == []


async def test_an_rsa_key_of_2048_bits_is_taken(services: Services) -> None:
    client, _ = await register(services, jwks={"keys": [rsa_jwk(2048)]})
    assert client.jwks is not None


@pytest.mark.parametrize(
    ("uri", "development", "taken"),
    [
        ("https://video.example.test/jwks.json", False, True),
        ("http://127.0.0.1:8002/jwks.json", False, True),
        ("http://[::1]/jwks.json", False, True),
        ("http://localhost/jwks.json", False, True),
        ("http://video.example.test/jwks.json", False, False),
        ("http://video.example.test/jwks.json", True, True),
        ("https://user:pass@video.example.test/jwks.json", True, False),
        ("ftp://video.example.test/jwks.json", True, False),
        ("https:///jwks.json", True, False),
    ],
)
def test_jwks_uri_is_https_or_loopback(
    settings_for: Callable[..., Settings], uri: str, development: bool, taken: bool
) -> None:
    settings = settings_for(environment="development" if development else "production")
    if taken:
        assert registry.check_jwks_uri(uri, settings) == uri
    else:
        with pytest.raises(RegistryError) as refused:
            registry.check_jwks_uri(uri, settings)
        assert "pass" not in refused.value.detail


async def test_an_id_is_registered_once_and_never_over_a_configured_client(
    settings_for: Callable[..., Settings], clock: FakeClock
) -> None:
    settings = settings_for(clients={"billing": SecretStr("configured-secret-1")})
    async with running(settings, clock, background=False, sleep=clock.sleep) as svc:
        await register(svc)
        with pytest.raises(ClientExistsError) as twice:
            await register(svc)
        assert twice.value.status == 409
        with pytest.raises(ClientExistsError):
            await register(svc, client_id="billing")


async def test_disabling_tells_the_edges_and_enabling_does_not(
    services: Services, clock: FakeClock
) -> None:
    await register(services)
    async with services.sessions() as db:
        disabled = await registry.set_disabled(db, services.settings, "video", True, now=clock())
    assert disabled.disabled is True
    events = await user_events(services)
    # Every token issued up to now, and for the client cache's lifetime after: another
    # replica may still hold the client as enabled that long.
    ahead = int(clock().timestamp() + registry.CLIENT_CACHE_SECONDS) + 1
    assert [(e["sub"], e["not_before"]) for e in events] == [("video", ahead)]
    # It lives as long as the longest token the client could hold, and the leeway.
    longest = max(services.settings.access_token_ttl, services.settings.service_token_ttl)
    assert events[0]["expires_at"] == int(clock().timestamp()) + longest + 60
    async with services.sessions() as db:
        await registry.set_disabled(db, services.settings, "video", True, now=clock())
        enabled = await registry.set_disabled(db, services.settings, "video", False, now=clock())
    assert enabled.disabled is False
    assert len(await user_events(services)) == 1  # neither a second disable nor the enable


async def test_removing_tells_the_edges(services: Services, clock: FakeClock) -> None:
    await register(services)
    await register(services, client_id="webapp", kind="app", auth_method="none", jwks=None)
    async with services.sessions() as db:
        await registry.remove(db, services.settings, "video", now=clock())
        await registry.remove(db, services.settings, "webapp", now=clock())  # no tokens of its own
        assert await registry.listed(db) == []
        with pytest.raises(NotFoundError):
            await registry.remove(db, services.settings, "video", now=clock())
    assert [e["sub"] for e in await user_events(services)] == ["video"]


# --- gatepass clients ----------------------------------------------------------------------------


class Commands:
    """``gatepass clients ...`` on the settings of a service that has been started once."""

    def __init__(self, settings: Settings) -> None:
        self.env = command_env(settings)

    async def run(self, *args: str) -> Result:
        def invoke() -> Result:
            return CliRunner().invoke(cli.app, ["clients", *args], None, self.env)

        return await asyncio.to_thread(invoke)

    async def ok(self, *args: str) -> str:
        result = await self.run(*args)
        assert result.exit_code == 0, (args, result.stdout, result.stderr, result.exception)
        return result.stdout


@pytest.fixture
async def commands(settings_for: Callable[..., Settings]) -> Commands:
    settings = settings_for()
    async with running(settings, background=False):
        pass  # the data folder, its KEK and the schema, as a service leaves them
    return Commands(settings)


async def test_the_clients_commands(commands: Commands, tmp_path: Path) -> None:
    public = tmp_path / "video.jwk.json"
    public.write_text(json.dumps(ec_jwk("video-1")))
    added = await commands.ok(
        "add", "video", "--kind", "service", "--auth", "private_key_jwt",
        "--audience", "mail", "--scope", "mail:notify", "--resource", "video",
        "--jwk-file", str(public),
    )  # fmt: skip
    assert "inline: video-1" in added
    assert "client_secret" not in added

    secret_added = await commands.run(
        "add", "mail", "--kind", "service", "--auth", "client_secret_basic",
        "--audience", "video", "--audience", "auth", "--scope", "video:read",
    )  # fmt: skip
    assert secret_added.exit_code == 0, secret_added.stderr
    secret = secret_added.stdout.split("client_secret: ")[1].split()[0]
    assert len(secret) >= 43
    assert "only time" in secret_added.stderr

    listed = await commands.ok("list")
    assert "video" in listed
    assert "mail" in listed
    shown = await commands.ok("show", "mail")
    assert "audiences: auth, video" in shown
    assert secret not in shown

    rotated = await commands.ok("rotate-secret", "mail")
    assert "client_secret: " in rotated
    assert secret not in rotated
    assert "disabled" in await commands.ok("disable", "video")
    assert "disabled:  true" in await commands.ok("show", "video")
    await commands.ok("enable", "video")
    assert "disabled:  false" in await commands.ok("show", "video")
    await commands.ok("remove", "video")
    missing = await commands.run("show", "video")
    assert missing.exit_code == 1
    assert "no client" in missing.stderr


async def test_clients_add_refuses_a_private_key_file(commands: Commands, tmp_path: Path) -> None:
    private = tmp_path / "video.private.jwk.json"
    key = ec_jwk("video-1", private=True)
    private.write_text(json.dumps({"keys": [key]}))
    refused = await commands.run(
        "add", "video", "--kind", "service", "--auth", "private_key_jwt",
        "--audience", "mail", "--jwk-file", str(private),
    )  # fmt: skip
    assert refused.exit_code == 1
    assert "PRIVATE key" in refused.stderr
    assert "Nothing was registered" in refused.stderr
    assert key["d"] not in refused.stdout + refused.stderr
    assert "video" not in await commands.ok("list")


async def test_clients_add_says_what_is_invalid(commands: Commands) -> None:
    refused = await commands.run(
        "add", "usr_video", "--kind", "service", "--auth", "client_secret_basic",
        "--audience", "mail",
    )  # fmt: skip
    assert refused.exit_code == 1
    assert "usr_" in refused.stderr
    assert "client_secret" not in refused.stdout


def test_registry_rows_hold_no_secret_in_their_record(services: Services) -> None:
    """What the token endpoint and the admin API get carries no secret and no hash."""
    names = set(RegisteredClient.__dataclass_fields__)
    assert not {name for name in names if "secret" in name or "hash" in name}

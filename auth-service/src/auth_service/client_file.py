"""Clients declared in a file (``GATEPASS_AUTH_CLIENTS_FILE``), applied at every start.

A deployment knows its services before it runs: compose, Kubernetes and ``./dev up`` declare
them here instead of calling the admin API after the auth service is up. The file is JSON::

    {"clients": [
      {"client_id": "mail", "kind": "service", "auth_method": "private_key_jwt",
       "audiences": ["auth", "video"], "scopes": ["revocations:read", "video:read"],
       "resource": "mail", "jwks": {"keys": [{"kty": "EC", ...}]}},
      {"client_id": "reports", "kind": "service", "auth_method": "client_secret_basic",
       "audiences": ["mail"], "scopes": ["mail:notify"],
       "secret_sha256": "<hex SHA-256 of the client's secret>"},
      {"client_id": "photos", "kind": "app", "auth_method": "none",
       "audiences": ["auth", "video"], "scopes": [],
       "redirect_uris": ["https://photos.example/callback"],
       "post_logout_redirect_uris": ["https://photos.example/"]}
    ]}

It holds public material only: public keys (or a ``jwks_uri``), and for a secret the SHA-256 of
it, never the secret (make one with ``openssl rand -base64 32``, at least 32 random bytes: a fast
hash is only safe for a secret nobody can guess).

Each declared client is registered, or brought in line with the file (kind, method, audiences,
scopes, resource, keys, secret, enabled): the file wins for the clients it names. Clients it does
not name, registered through the admin API or ``gatepass clients``, are left alone. Several
replicas starting at once apply it alike (a registration that loses the race becomes an update).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from auth_service import registry
from auth_service.config import ConfigError, Settings
from auth_service.state import Services

log = logging.getLogger("gatepass.auth.clients")

_FIELDS = frozenset(
    {
        "client_id",
        "kind",
        "auth_method",
        "audiences",
        "scopes",
        "resource",
        "jwks",
        "jwks_uri",
        "secret_sha256",
        "redirect_uris",
        "post_logout_redirect_uris",
    }
)
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
MAX_FILE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Declared:
    """One client as the file declares it."""

    client_id: str
    kind: str
    auth_method: str
    audiences: list[str]
    scopes: list[str]
    resource: str | None
    jwks: Mapping[str, Any] | None
    jwks_uri: str | None
    secret_sha256: str | None
    redirect_uris: list[str] | None = None
    post_logout_redirect_uris: list[str] | None = None


def read(path: Path) -> list[Declared]:
    """The file's clients; :class:`ConfigError` naming what is wrong (never a value in it)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"clients_file: cannot read it ({exc.strerror})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"clients_file: larger than {MAX_FILE_BYTES} bytes")
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ConfigError("clients_file: not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("clients"), list):
        raise ConfigError('clients_file: must be {"clients": [...]}')
    declared = [_declared(index, entry) for index, entry in enumerate(document["clients"])]
    ids = [client.client_id for client in declared]
    if len(set(ids)) != len(ids):
        raise ConfigError("clients_file: a client id is declared twice")
    return declared


def _declared(index: int, entry: object) -> Declared:
    where = f"clients_file: client {index}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be an object")
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown fields {', '.join(map(repr, unknown[:5]))}")
    for name in ("client_id", "kind", "auth_method"):
        if not isinstance(entry.get(name), str):
            raise ConfigError(f"{where}: {name} must be a string")
    for name in ("audiences", "scopes", "redirect_uris", "post_logout_redirect_uris"):
        if not isinstance(entry.get(name, []), list):
            raise ConfigError(f"{where}: {name} must be a list")
    secret_sha256 = entry.get("secret_sha256")
    if entry["auth_method"] == "client_secret_basic":
        if not isinstance(secret_sha256, str) or _SHA256_HEX.fullmatch(secret_sha256) is None:
            raise ConfigError(
                f"{where}: a client_secret_basic client needs secret_sha256, the lowercase hex "
                "SHA-256 of its secret"
            )
    elif secret_sha256 is not None:
        raise ConfigError(f"{where}: only a client_secret_basic client has secret_sha256")
    return Declared(
        client_id=entry["client_id"],
        kind=entry["kind"],
        auth_method=entry["auth_method"],
        audiences=list(entry.get("audiences", [])),
        scopes=list(entry.get("scopes", [])),
        resource=entry.get("resource"),
        jwks=entry.get("jwks"),
        jwks_uri=entry.get("jwks_uri"),
        secret_sha256=secret_sha256,
        redirect_uris=entry.get("redirect_uris"),
        post_logout_redirect_uris=entry.get("post_logout_redirect_uris"),
    )


async def apply(
    db: AsyncSession, settings: Settings, declared: list[Declared], now: datetime
) -> None:
    """Register each declared client, or bring it in line with its declaration; a declaration
    the registry refuses stops the start with a :class:`ConfigError` naming the client."""
    for client in declared:
        try:
            await registry.declare(
                db,
                settings,
                client_id=client.client_id,
                kind=client.kind,
                auth_method=client.auth_method,
                audiences=client.audiences,
                scopes=client.scopes,
                resource=client.resource,
                jwks=client.jwks,
                jwks_uri=client.jwks_uri,
                secret_hash=client.secret_sha256,
                redirect_uris=client.redirect_uris,
                post_logout_redirect_uris=client.post_logout_redirect_uris,
                now=now,
            )
        except (registry.RegistryError, registry.ClientExistsError) as exc:
            await db.rollback()
            raise ConfigError(
                f"clients_file: client {client.client_id!r} refused: {exc.detail}"
            ) from None


async def apply_declared(svc: Services) -> None:
    """At start-up: the clients of the settings' clients file, registered or brought in line."""
    if svc.settings.clients_file is None:
        return
    declared = read(svc.settings.clients_file)
    async with svc.sessions() as db:
        await apply(db, svc.settings, declared, svc.clock())
    log.info("clients file applied", extra={"clients": len(declared)})

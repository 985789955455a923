"""What readers see of the keys: the one that signs, the public keys, and the JWKS document.

A :class:`Snapshot` is built from the published rows (``active``, ``next``, ``retired``) and their
unsealed private keys; readers (token signing, our own verification, the JWKS route) use it
without touching the database. The JWKS body is deterministic, so every replica serves the same
bytes under the same ETag.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from auth_service.keys.rotation import ACTIVE, NEXT, RETIRED, activated
from auth_service.keys.sealing import THUMBPRINT_MEMBERS, PrivateKey, PublicKey, b64url
from auth_service.models import SigningKey

_STATE_ORDER: Final[Mapping[str, int]] = {ACTIVE: 0, NEXT: 1, RETIRED: 2}


@dataclass(frozen=True)
class SigningMaterial:
    kid: str
    alg: str
    private_key: PrivateKey


@dataclass(frozen=True)
class JwksDocument:
    body: bytes
    etag: str


@dataclass(frozen=True)
class Snapshot:
    loaded_at: datetime
    active: SigningMaterial | None
    active_since: datetime | None
    public: Mapping[str, tuple[str, PublicKey]]
    jwks: JwksDocument


def snapshot(
    rows: Sequence[SigningKey], private: Mapping[str, PrivateKey], now: datetime
) -> Snapshot:
    """The readers' view of the published ``rows``; ``private`` holds each row's unsealed key."""
    ordered = sorted(rows, key=publish_order)
    active = next((row for row in ordered if row.state == ACTIVE), None)
    return Snapshot(
        loaded_at=now,
        active=(
            SigningMaterial(active.kid, active.alg, private[active.kid])
            if active is not None
            else None
        ),
        active_since=activated(active) if active is not None else None,
        public={row.kid: (row.alg, private[row.kid].public_key()) for row in ordered},
        jwks=jwks_document(ordered),
    )


def publish_order(row: SigningKey) -> tuple[int, float, str]:
    """Active first, then next, then retired; newest first within a state; kid breaks ties.
    Deterministic, so every replica serves the same bytes under the same ETag.
    """
    since = row.activated_at if row.state == ACTIVE and row.activated_at else row.created_at
    return (_STATE_ORDER.get(row.state, len(_STATE_ORDER)), -since.timestamp(), row.kid)


def published_jwk(row: SigningKey) -> dict[str, str]:
    """Only the public members (an allow-list, whatever the stored JSON holds), plus kid/alg/use."""
    stored = row.public_jwk
    members = THUMBPRINT_MEMBERS[str(stored["kty"])]
    return {
        **{name: str(stored[name]) for name in members},
        "kid": row.kid,
        "alg": row.alg,
        "use": "sig",
    }


def jwks_document(ordered: Sequence[SigningKey]) -> JwksDocument:
    body = json.dumps(
        {"keys": [published_jwk(row) for row in ordered]}, separators=(",", ":"), sort_keys=True
    ).encode("utf-8")
    return JwksDocument(body=body, etag=f'"{b64url(hashlib.sha256(body).digest())}"')

"""What readers see of the keys: the ones that sign, the public keys, and the JWKS document.

A :class:`Snapshot` is built from the published rows (``active``, ``next``, ``retired``) and their
unsealed private keys; readers (token signing, our own verification, the JWKS route) use it
without touching the database. It holds the signing key of each purpose (access tokens, ID
tokens); the JWKS publishes every purpose's keys, since a relying party verifies ID tokens from
the same ``jwks_uri`` the edges verify access tokens from. The JWKS body is deterministic, so
every replica serves the same bytes under the same ETag.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from auth_service.keys.rotation import (
    ACCESS,
    ACTIVE,
    NEXT,
    PURPOSES,
    RETIRED,
    activated,
    actives,
    of_purpose,
    purpose_of,
)
from auth_service.keys.sealing import THUMBPRINT_MEMBERS, PrivateKey, PublicKey, b64url
from auth_service.models import SigningKey

_STATE_ORDER: Final[Mapping[str, int]] = {ACTIVE: 0, NEXT: 1, RETIRED: 2}
_PURPOSE_ORDER: Final[Mapping[str, int]] = {purpose: rank for rank, purpose in enumerate(PURPOSES)}


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
    active: Mapping[str, SigningMaterial]  # purpose -> the key that signs for it
    active_since: datetime | None  # when the access-token key started signing
    public: Mapping[str, tuple[str, PublicKey]]
    algs: Mapping[str, tuple[str, ...]]  # purpose -> the sorted algorithms of its published keys
    jwks: JwksDocument


def snapshot(
    rows: Sequence[SigningKey], private: Mapping[str, PrivateKey], now: datetime
) -> Snapshot:
    """The readers' view of the published ``rows``; ``private`` holds each row's unsealed key."""
    ordered = sorted(rows, key=publish_order)
    signing = {
        purpose: keys[0] for purpose in PURPOSES if (keys := actives(of_purpose(ordered, purpose)))
    }
    access = signing.get(ACCESS)
    return Snapshot(
        loaded_at=now,
        active={
            purpose: SigningMaterial(row.kid, row.alg, private[row.kid])
            for purpose, row in signing.items()
        },
        active_since=activated(access) if access is not None else None,
        public={row.kid: (row.alg, private[row.kid].public_key()) for row in ordered},
        algs={
            purpose: tuple(sorted({row.alg for row in of_purpose(ordered, purpose)}))
            for purpose in PURPOSES
        },
        jwks=jwks_document(ordered),
    )


def publish_order(row: SigningKey) -> tuple[int, int, float, str]:
    """Access keys, then ID-token keys; active first, then next, then retired; newest first
    within a state; kid breaks ties. Deterministic, so every replica serves the same bytes under
    the same ETag.
    """
    since = row.activated_at if row.state == ACTIVE and row.activated_at else row.created_at
    return (
        _PURPOSE_ORDER.get(purpose_of(row), len(_PURPOSE_ORDER)),
        _STATE_ORDER.get(row.state, len(_STATE_ORDER)),
        -since.timestamp(),
        row.kid,
    )


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

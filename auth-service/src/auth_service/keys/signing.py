"""Signing a JWT with one of our keys, under the algorithm name the key is published with.

RFC 9864 names the Ed25519 signature algorithm ``Ed25519`` (fully specified) and deprecates the
polymorphic ``EdDSA``; our Ed25519 keys are published and sign under the new name. PyJWT knows
only ``EdDSA``, so tokens are signed through a PyJWS of our own with PyJWT's OKP algorithm (the
same Ed25519 signature, RFC 8037) registered under ``Ed25519`` too. PyJWT's module-level objects
are left alone: nothing else in the process changes its mind about algorithm names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import jwt
from jwt.algorithms import OKPAlgorithm

from auth_service.keys.published import SigningMaterial

ED25519: Final = "Ed25519"


def _jws() -> jwt.PyJWS:
    jws = jwt.PyJWS()
    jws.register_algorithm(ED25519, OKPAlgorithm())
    return jws


# Knows every algorithm PyJWT knows, and Ed25519 under both names: what signs our tokens, and
# what can check a JWS signed under RFC 9864's name (a client's assertion, say), always with an
# explicit ``algorithms`` list.
JWS: Final = _jws()


def sign_jwt(key: SigningMaterial, claims: Mapping[str, Any], *, typ: str) -> str:
    """The compact JWS of ``claims`` signed with ``key``: header ``alg`` (the key's own), ``kid``
    and ``typ`` (``at+jwt`` for an access token, ``JWT`` for an ID token)."""
    payload = json.dumps(claims, separators=(",", ":")).encode("utf-8")
    return JWS.encode(
        payload, key.private_key, algorithm=key.alg, headers={"kid": key.kid, "typ": typ}
    )

"""Signing keys: their life cycle, their encryption at rest, and the JWKS that publishes them.

A key is ``next`` (published, not signing) -> ``active`` (signing) -> ``retired`` (published until
every token it signed has expired) -> deleted; or ``revoked`` (out of the JWKS at once).

- :mod:`~auth_service.keys.kek`: the key-encryption key, from the settings or generated in
  development;
- :mod:`~auth_service.keys.sealing`: generating a key, its JWK and kid (RFC 7638 thumbprint), and
  sealing it under the KEK (AES-256-GCM);
- :mod:`~auth_service.keys.rotation`: the rules, as plain functions of the key rows and a time
  (what the schedule says at time T, and each transition);
- :mod:`~auth_service.keys.published`: what readers see (the signing key of each purpose, the
  public keys, the JWKS document);
- :mod:`~auth_service.keys.signing`: signing a JWT under the key's published algorithm name
  (``Ed25519``, RFC 9864, which PyJWT does not know by that name);
- :mod:`~auth_service.keys.lock`: the lock that lets exactly one replica change the keys;
- :mod:`~auth_service.keys.manager`: :class:`KeyManager`, which runs the life cycle in
  transactions under that lock and serves the readers.
"""

from auth_service.keys.kek import load_kek
from auth_service.keys.manager import (
    KeyManager,
    KeyNotFoundError,
    NoActiveKeyError,
    UnknownPurposeError,
)
from auth_service.keys.published import JwksDocument, SigningMaterial
from auth_service.keys.rotation import ACCESS, ID, PURPOSES
from auth_service.keys.sealing import jwk_thumbprint
from auth_service.keys.signing import sign_jwt

__all__ = [
    "ACCESS",
    "ID",
    "PURPOSES",
    "JwksDocument",
    "KeyManager",
    "KeyNotFoundError",
    "NoActiveKeyError",
    "SigningMaterial",
    "UnknownPurposeError",
    "jwk_thumbprint",
    "load_kek",
    "sign_jwt",
]

"""Key material: generating a signing key, its public JWK and kid, and sealing it at rest.

A key is named by its RFC 7638 thumbprint (so the kid is the public key's fingerprint, the same on
every replica), published as a JWK of its public members only, and stored as PKCS#8 DER under
AES-256-GCM with the key-encryption key (:mod:`auth_service.keys.kek`).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from auth_service.config import ConfigError
from gatepass.core.jwk import (
    THUMBPRINT_MEMBERS,
    PrivateKey,
    PublicKey,
    b64url,
    generate_private_key,
    jwk_thumbprint,
    public_jwk,
)

__all__ = ["THUMBPRINT_MEMBERS", "PrivateKey", "PublicKey", "b64url", "jwk_thumbprint"]

NONCE_BYTES: Final = 12


def _fits_alg(key: object, alg: str) -> bool:
    """Whether ``key`` is the key type ``alg`` signs with (a row's alg and key must agree)."""
    if alg == "ES256":
        return isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
    if alg == "RS256":
        return isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048
    # "EdDSA": RFC 9864's deprecated name, which rows stored before migration 0006 carry.
    return alg in ("Ed25519", "EdDSA") and isinstance(key, ed25519.Ed25519PrivateKey)


def seal(kek: bytes, kid: str, private_key: PrivateKey) -> bytes:
    """PKCS#8 DER under AES-256-GCM; the kid is associated data, so a sealed key cannot be moved
    to another row. Layout: 12-byte nonce, then ciphertext and tag.
    """
    der = private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + AESGCM(kek).encrypt(nonce, der, kid.encode("utf-8"))


def unseal(kek: bytes, kid: str, alg: str, sealed: bytes) -> PrivateKey:
    try:
        der = AESGCM(kek).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], kid.encode("utf-8"))
    except (InvalidTag, ValueError) as exc:
        raise ConfigError(
            f"the key-encryption key does not match the signing keys in the database (key {kid} "
            "cannot be decrypted); start with the key-encryption key that sealed them"
        ) from exc
    key = serialization.load_der_private_key(der, password=None)
    if not isinstance(
        key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    ) or not _fits_alg(key, alg):
        raise ConfigError(f"signing key {kid} in the database is not a valid {alg} key")
    return key


def unseal_all(kek: bytes, sealed: Iterable[tuple[str, str, bytes]]) -> dict[str, PrivateKey]:
    return {kid: unseal(kek, kid, alg, blob) for kid, alg, blob in sealed}


@dataclass(frozen=True)
class NewKey:
    """A freshly generated key, ready to insert: made outside any transaction when possible."""

    kid: str
    alg: str
    jwk: dict[str, str]
    sealed: bytes


def new_key(kek: bytes, alg: str) -> NewKey:
    """Generate, name (RFC 7638 thumbprint) and seal a key. CPU-bound: run it in a thread."""
    private_key = generate_private_key(alg)
    jwk = public_jwk(private_key.public_key())
    kid = jwk_thumbprint(jwk)
    published = {**jwk, "kid": kid, "alg": alg, "use": "sig"}
    return NewKey(kid=kid, alg=alg, jwk=published, sealed=seal(kek, kid, private_key))

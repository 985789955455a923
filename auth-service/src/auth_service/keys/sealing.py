"""Key material: generating a signing key, its public JWK and kid, and sealing it at rest.

A key is named by its RFC 7638 thumbprint (so the kid is the public key's fingerprint, the same on
every replica), published as a JWK of its public members only, and stored as PKCS#8 DER under
AES-256-GCM with the key-encryption key (:mod:`auth_service.keys.kek`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from auth_service.config import ConfigError

PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey: TypeAlias = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

NONCE_BYTES: Final = 12
# RSA 2048 rather than 3072: a key signs for one rotation interval (30 days by default) and is
# published a few minutes longer, so breaking it is only worth anything during that window, for
# which 2048 bits is ample (NIST SP 800-57 accepts it to 2030). 3072 would make every token
# issuance several times slower and every token 128 bytes longer, for no gain in this window.
RSA_KEY_BITS: Final = 2048

# The public members of each key type, exactly as RFC 7638 lists them for the thumbprint.
THUMBPRINT_MEMBERS: Final[Mapping[str, tuple[str, ...]]] = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
}


def b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 §2), as every JWK member and the kid are written."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint_bytes(value: int) -> bytes:
    """Big-endian without leading zeros (RFC 7518 §6.3.1: RSA members are not zero-padded)."""
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def public_jwk(public_key: PublicKey) -> dict[str, str]:
    """The public members of ``public_key`` as a JWK (no kid, alg or use)."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, ec.SECP256R1):
            raise ValueError(f"unsupported curve {public_key.curve.name}")
        numbers = public_key.public_numbers()
        # RFC 7518 §6.2.1.2: coordinates are the full size of the curve (32 bytes for P-256).
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
        }
    if isinstance(public_key, rsa.RSAPublicKey):
        rsa_numbers = public_key.public_numbers()
        return {
            "kty": "RSA",
            "n": b64url(_uint_bytes(rsa_numbers.n)),
            "e": b64url(_uint_bytes(rsa_numbers.e)),
        }
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 thumbprint: SHA-256 of the required members in lexicographic order, no spaces."""
    members = THUMBPRINT_MEMBERS[str(jwk["kty"])]
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"))
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def _generate_private_key(alg: str) -> PrivateKey:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported signing algorithm {alg!r}")


def _fits_alg(key: object, alg: str) -> bool:
    """Whether ``key`` is the key type ``alg`` signs with (a row's alg and key must agree)."""
    if alg == "ES256":
        return isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
    if alg == "RS256":
        return isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048
    return alg == "EdDSA" and isinstance(key, ed25519.Ed25519PrivateKey)


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
    private_key = _generate_private_key(alg)
    jwk = public_jwk(private_key.public_key())
    kid = jwk_thumbprint(jwk)
    published = {**jwk, "kid": kid, "alg": alg, "use": "sig"}
    return NewKey(kid=kid, alg=alg, jwk=published, sealed=seal(kek, kid, private_key))

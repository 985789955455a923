"""JSON Web Keys of our own keys (RFC 7517, RFC 7518 §6): public members, thumbprints, and the
private JWK a service keeps to prove who it is (RFC 7523 ``private_key_jwt``).

One implementation for every gatepass party: the auth service names its signing keys by their
RFC 7638 thumbprint with it, and a service makes its client key with :func:`new_private_jwk`
(``gatepass-client-key``, :mod:`gatepass.clientkey`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final, TypeAlias

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey: TypeAlias = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

# The public members of each key type, exactly as RFC 7638 lists them for the thumbprint.
THUMBPRINT_MEMBERS: Final[Mapping[str, tuple[str, ...]]] = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
}
# Members only a private key has (RFC 7518 §6.2.2, §6.3.2; RFC 8037 §2).
PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# RSA 2048 rather than 3072: a key signs for one rotation interval (30 days by default) and is
# published a few minutes longer, so breaking it is only worth anything during that window, for
# which 2048 bits is ample (NIST SP 800-57 accepts it to 2030). 3072 would make every token
# issuance several times slower and every token 128 bytes longer, for no gain in this window.
RSA_KEY_BITS: Final = 2048


def b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 §2), as every JWK member and the kid are written."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint_bytes(value: int, size: int | None = None) -> bytes:
    """Big-endian; ``size`` bytes, or without leading zeros (RFC 7518 §6.3.1 for RSA)."""
    return value.to_bytes(size or max(1, (value.bit_length() + 7) // 8), "big")


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
            "x": b64url(_uint_bytes(numbers.x, 32)),
            "y": b64url(_uint_bytes(numbers.y, 32)),
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


def generate_private_key(alg: str) -> PrivateKey:
    """A fresh key for ``ES256`` (P-256), ``RS256`` (2048 bits) or ``Ed25519`` (RFC 9864; also
    under its deprecated name ``EdDSA``)."""
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    if alg in ("Ed25519", "EdDSA"):
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported signing algorithm {alg!r}")


def private_jwk(key: PrivateKey, alg: str) -> dict[str, str]:
    """``key`` as a private JWK, named by its thumbprint, with ``alg`` and ``use: sig``."""
    members = public_jwk(key.public_key())
    if isinstance(key, ec.EllipticCurvePrivateKey):
        members["d"] = b64url(_uint_bytes(key.private_numbers().private_value, 32))
    elif isinstance(key, rsa.RSAPrivateKey):
        numbers = key.private_numbers()
        for name, value in (
            ("d", numbers.d),
            ("p", numbers.p),
            ("q", numbers.q),
            ("dp", numbers.dmp1),
            ("dq", numbers.dmq1),
            ("qi", numbers.iqmp),
        ):
            members[name] = b64url(_uint_bytes(value))
    else:
        raw = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        members["d"] = b64url(raw)
    return {**members, "kid": jwk_thumbprint(members), "alg": alg, "use": "sig"}


def new_private_jwk(alg: str = "ES256") -> dict[str, str]:
    """A new client key as a private JWK (what ``ClientIdentity.from_jwk`` takes)."""
    return private_jwk(generate_private_key(alg), alg)


def public_of(jwk: Mapping[str, Any]) -> dict[str, Any]:
    """The public half of a JWK: every member but the private ones."""
    return {name: value for name, value in jwk.items() if name not in PRIVATE_MEMBERS}

"""JWKS parsing: from an issuer's document to ready-to-use verification keys.

Each accepted key becomes a :class:`VerificationKey` holding a prepared ``cryptography`` public key
and exactly one algorithm, so the per-request cost is the signature math and nothing else, and a
key can never be used with another algorithm than its own (no RS256/HS256 or ES256/RS256
confusion).

A bad entry is skipped and counted by reason, never fatal: one odd key must not take the whole key
set down. Entries that carry private parameters (``d``, ...) are skipped too; an issuer leaking its
private keys is a bug that shows up in the stats as ``private_key``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gatepass.core._b64 import b64url_decode

Algorithm = Literal["ES256", "RS256", "EdDSA"]
SUPPORTED_ALGORITHMS: Final = frozenset({"ES256", "RS256", "EdDSA"})
MIN_RSA_BITS: Final = 2048

_KID_RE = re.compile(r"[A-Za-z0-9._~+/=:-]{1,128}")
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_IMPLIED_ALGORITHMS: dict[tuple[str | None, str | None], str] = {
    ("EC", "P-256"): "ES256",
    ("OKP", "Ed25519"): "EdDSA",
    ("RSA", None): "RS256",
}
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


def is_wellformed_kid(kid: object) -> bool:
    """The cheap check done before an unknown ``kid`` may cost the issuer anything."""
    return isinstance(kid, str) and _KID_RE.fullmatch(kid) is not None


class JwksError(ValueError):
    """The document as a whole is not a JWKS (not JSON, no ``keys`` list)."""


class SkippedKey(ValueError):
    """One entry was refused; ``reason`` is its stats label."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class VerificationKey:
    """A public key bound to one ``kid`` and one algorithm."""

    __slots__ = ("alg", "jwk", "kid")

    def __init__(self, kid: str, alg: str, jwk: Mapping[str, Any]) -> None:
        self.kid = kid
        self.alg = alg
        self.jwk = jwk

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        """True when ``signature`` is this key's signature of ``signing_input``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} kid={self.kid!r} alg={self.alg}>"


class Es256Key(VerificationKey):
    __slots__ = ("public_key",)

    def __init__(self, kid: str, jwk: Mapping[str, Any], key: ec.EllipticCurvePublicKey) -> None:
        super().__init__(kid, "ES256", jwk)
        self.public_key = key

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        if len(signature) != 64:
            return False
        try:
            self.public_key.verify(raw_to_der(signature), signing_input, _ECDSA_SHA256)
        except InvalidSignature:
            return False
        return True


class Rs256Key(VerificationKey):
    __slots__ = ("public_key",)

    def __init__(self, kid: str, jwk: Mapping[str, Any], key: rsa.RSAPublicKey) -> None:
        super().__init__(kid, "RS256", jwk)
        self.public_key = key

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        try:
            self.public_key.verify(signature, signing_input, _PKCS1, _SHA256)
        except InvalidSignature:
            return False
        return True


class EdDsaKey(VerificationKey):
    __slots__ = ("public_key",)

    def __init__(self, kid: str, jwk: Mapping[str, Any], key: Ed25519PublicKey) -> None:
        super().__init__(kid, "EdDSA", jwk)
        self.public_key = key

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        try:
            self.public_key.verify(signature, signing_input)
        except InvalidSignature:
            return False
        return True


def raw_to_der(signature: bytes) -> bytes:
    """JWS ES256 signatures are r||s (RFC 7518 section 3.4); OpenSSL wants DER. Runs per token."""
    r, s = signature[:32].lstrip(b"\0"), signature[32:].lstrip(b"\0")
    if not r or r[0] & 0x80:
        r = b"\0" + r
    if not s or s[0] & 0x80:
        s = b"\0" + s
    return bytes((0x30, len(r) + len(s) + 4, 2, len(r))) + r + bytes((2, len(s))) + s


@dataclass(frozen=True)
class ParsedJwks:
    """The usable keys of one document, and how many entries were skipped, by reason."""

    keys: Mapping[str, VerificationKey]
    skipped: Mapping[str, int] = field(default_factory=dict)


def parse_jwks(document: bytes | Mapping[str, Any]) -> ParsedJwks:
    """Parse a JWKS document; raise :class:`JwksError` only if it is not a JWKS at all."""
    entries = _entries(document)
    keys: dict[str, VerificationKey] = {}
    skipped: Counter[str] = Counter()
    duplicates: set[str] = set()
    for entry in entries:
        try:
            key = parse_jwk(entry)
        except SkippedKey as exc:
            skipped[exc.reason] += 1
            continue
        if key.kid in keys or key.kid in duplicates:
            duplicates.add(key.kid)
        keys[key.kid] = key
    _drop_duplicates(keys, duplicates, skipped)
    return ParsedJwks(keys=keys, skipped=dict(skipped))


def _entries(document: bytes | Mapping[str, Any]) -> Iterable[Any]:
    if isinstance(document, bytes):
        try:
            document = orjson.loads(document)
        except ValueError as exc:  # not UTF-8, not JSON, or nested over 1,024 deep
            raise JwksError("the JWKS is not JSON") from exc
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise JwksError("the JWKS has no 'keys' list")
    keys: list[Any] = document["keys"]
    return keys


def _drop_duplicates(
    keys: dict[str, VerificationKey], duplicates: set[str], skipped: Counter[str]
) -> None:
    """Two entries with one ``kid`` make the ``kid`` ambiguous: use neither."""
    for kid in duplicates:
        del keys[kid]
        skipped["duplicate_kid"] += 1


def parse_jwk(jwk: object) -> VerificationKey:
    """One JWK to a key, or :class:`SkippedKey` saying why not."""
    if not isinstance(jwk, Mapping):
        raise SkippedKey("not_an_object")
    if _PRIVATE_MEMBERS.intersection(jwk):
        raise SkippedKey("private_key")
    _check_use(jwk)
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not is_wellformed_kid(kid):
        raise SkippedKey("bad_kid")
    alg = _algorithm(jwk)
    try:
        return _BUILDERS[alg](kid, jwk)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, SkippedKey):
            raise
        raise SkippedKey("invalid_key") from exc


def _check_use(jwk: Mapping[str, Any]) -> None:
    use = jwk.get("use", "sig")
    ops = jwk.get("key_ops", ["verify"])
    if use != "sig" or not isinstance(ops, list) or "verify" not in ops:
        raise SkippedKey("wrong_use")


def _algorithm(jwk: Mapping[str, Any]) -> str:
    """The key's own algorithm: stated, or derivable without guessing; else skip."""
    kty, crv, alg = jwk.get("kty"), jwk.get("crv"), jwk.get("alg")
    if not all(value is None or isinstance(value, str) for value in (kty, crv, alg)):
        raise SkippedKey("unsupported")
    expected = _IMPLIED_ALGORITHMS.get((kty, crv))
    if expected is None:
        raise SkippedKey("unsupported")
    if alg is None and kty == "RSA":
        raise SkippedKey("missing_alg")  # RS256, PS256, RS512...: an RSA key does not say
    if alg is not None and alg != expected:
        raise SkippedKey("unsupported")
    return expected


def _member(jwk: Mapping[str, Any], name: str, size: int | None = None) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise SkippedKey("invalid_key")
    raw = b64url_decode(value.encode("ascii"))
    if size is not None and len(raw) != size:
        raise SkippedKey("invalid_key")
    return raw


def _ec_key(kid: str, jwk: Mapping[str, Any]) -> VerificationKey:
    x = int.from_bytes(_member(jwk, "x", 32), "big")
    y = int.from_bytes(_member(jwk, "y", 32), "big")
    key = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    return Es256Key(kid, _public_jwk(jwk, ("kty", "crv", "x", "y")), key)


def _rsa_key(kid: str, jwk: Mapping[str, Any]) -> VerificationKey:
    n = int.from_bytes(_member(jwk, "n"), "big")
    e = int.from_bytes(_member(jwk, "e"), "big")
    if n.bit_length() < MIN_RSA_BITS:
        raise SkippedKey("weak_key")
    key = rsa.RSAPublicNumbers(e, n).public_key()
    return Rs256Key(kid, _public_jwk(jwk, ("kty", "n", "e")), key)


def _okp_key(kid: str, jwk: Mapping[str, Any]) -> VerificationKey:
    key = Ed25519PublicKey.from_public_bytes(_member(jwk, "x", 32))
    return EdDsaKey(kid, _public_jwk(jwk, ("kty", "crv", "x")), key)


def _public_jwk(jwk: Mapping[str, Any], members: tuple[str, ...]) -> dict[str, Any]:
    """The canonical public form kept for the last-known-good copy: nothing else survives."""
    kept = {name: jwk[name] for name in members}
    kept.update(kid=jwk["kid"], alg=_algorithm(jwk), use="sig")
    return kept


_BUILDERS = {"ES256": _ec_key, "RS256": _rsa_key, "EdDSA": _okp_key}
